module github.com/culvert-dev/culvert/sources/file-source

go 1.26.8
