//! `zk-tools`: the operator tools Apache ZooKeeper ships, on its data-directory files and
//! ours, with its tools' options and output.
//!
//! ```text
//! zk-tools txnlog   [-dhrvcy] <log file> [-z <zxid>]   (zkTxnLogToolkit.sh)
//! zk-tools snapshot [-d|-json] <snapshot file>        (zkSnapShotToolkit.sh)
//! zk-tools compare  -l <left> -r <right> -b <bytes> -n <nodes> [-d]
//!                                                      (zkSnapshotComparer.sh)
//! zk-tools cleanup  <dataLogDir> [<snapDir>] -n <count>  (zkCleanup.sh)
//! zk-tools digest   <dataDir> [<dataLogDir>]           (replays, checks every digest)
//! ```
//!
//! Every tool streams its input: a file is read once, and a snapshot's nodes are printed
//! from the file's bytes without building a tree. Progress goes to stderr on large inputs.

#[path = "../javatext.rs"]
mod javatext;

mod cleanup;
mod compare;
mod digest;
mod java;
mod progress;
mod snapshot;
mod txnlog;

use std::process::ExitCode;

const USAGE: &str = "\
usage: zk-tools <tool> [options]

  txnlog [-dhrvcy] <txn_log_file_name> (-z <zxid>)
                 ZooKeeper's TxnLogToolkit: dump a txn log (default), chop it after a
                 zxid (-c -z), or recompute broken checksums (-r, -v, -y)
  snapshot [-d|-json] <snapshot_file>
                 ZooKeeper's SnapshotFormatter: every znode's stat (-d: and data),
                 the sessions, the last zxid; -json: the tree as JSON
  compare -l <left> -r <right> -b <bytes> -n <nodes> [-d]
                 ZooKeeper's SnapshotComparer: what differs between two snapshots
  cleanup <dataLogDir> [<snapDir>] -n <count>
                 ZooKeeper's PurgeTxnLog (zkCleanup.sh): keep the <count> (at least 3)
                 newest snapshots and the logs they need, delete the rest
  digest <dataDir> [<dataLogDir>]
                 replay the data directory from its oldest snapshot, checking each
                 snapshot's and each logged txn's tree digest

Every tool reads Apache ZooKeeper's files and ours alike.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((tool, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let code = match tool.as_str() {
        "txnlog" => txnlog::main(rest),
        "snapshot" => snapshot::main(rest),
        "compare" => compare::main(rest),
        "cleanup" => cleanup::main(rest),
        "digest" => digest::main(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            0
        }
        other => {
            eprintln!("zk-tools: unknown tool `{other}`\n{USAGE}");
            2
        }
    };
    ExitCode::from(code)
}
