// Wrapper module: containerd 1.6.20 (= Debian bookworm's containerd) for the test oracles (see testenv/README.md).
module nrc.test/testenv/containerd1

go 1.22

require (
	github.com/containerd/containerd v1.6.20
	github.com/sirupsen/logrus v1.8.1
	nrc.test/testenv/ctrdoracle v0.0.0
)

require (
	github.com/golang/protobuf v1.5.2 // indirect
	github.com/klauspost/compress v1.11.13 // indirect
	github.com/moby/locker v1.0.1 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.0-rc2.0.20221005185240-3a7f492d3f1b // indirect
	github.com/pelletier/go-toml v1.9.5 // indirect
	golang.org/x/net v0.0.0-20220722155237-a158d28d115b // indirect
	golang.org/x/sync v0.0.0-20210220032951-036812b2e83c // indirect
	golang.org/x/sys v0.0.0-20220722155257-8c9f86f7a55f // indirect
	google.golang.org/genproto v0.0.0-20220502173005-c8bf987b8c21 // indirect
	google.golang.org/grpc v1.47.0 // indirect
	google.golang.org/protobuf v1.28.0 // indirect
)

replace nrc.test/testenv/ctrdoracle => ../ctrdoracle
