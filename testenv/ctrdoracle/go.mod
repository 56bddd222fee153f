// Shared command line and JSON output of containerd1-oracle and containerd2-oracle
// (standard library only; the oracles import it through a local replace).
module nrc.test/testenv/ctrdoracle

go 1.22
