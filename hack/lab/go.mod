// The lab's own small programs, built static into the lab's OCI images.
module edgeoperator.dev/lab

go 1.24
