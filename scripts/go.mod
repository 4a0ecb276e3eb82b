module github.com/culvert-dev/culvert/scripts

go 1.26.8
