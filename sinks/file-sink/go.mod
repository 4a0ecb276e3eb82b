module github.com/culvert-dev/culvert/sinks/file-sink

go 1.26.8
