//! ZooKeeper's fast leader election (FastLeaderElection) as a deterministic state machine
//! driven by inputs, with a gRPC transport between peers.
