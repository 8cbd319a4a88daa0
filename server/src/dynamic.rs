//! The dynamic configuration files, as ZooKeeper writes them once reconfiguration is on:
//! the membership in `zoo.cfg.dynamic.<version>` beside `zoo.cfg`, the static settings
//! left in `zoo.cfg` with a `dynamicConfigFile=` line naming it, and the first `zoo.cfg`
//! kept as `zoo.cfg.bak`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Writes `contents` to `path` through a file beside it, renamed over it once synced.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// `zoo.cfg.bak`: the configuration file as it was, kept before it is first split (as
/// ZooKeeper's `backupOldConfig`, at the start of an ensemble's member with
/// reconfiguration on and the membership still in `zoo.cfg`).
pub(crate) fn backup(config_file: &Path) -> std::io::Result<PathBuf> {
    let mut name = config_file.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    let backup = config_file.with_file_name(name);
    write_atomically(&backup, &std::fs::read(config_file)?)?;
    Ok(backup)
}

/// Writes `config`'s membership to `<zoo.cfg>.dynamic.<hex version>` (lines sorted, as
/// ZooKeeper's `writeDynamicConfig`, no `version=` line, none after the last) and points
/// `zoo.cfg` at it, with the membership taken out ([`edit_static`]). Returns the
/// dynamic file.
pub(crate) fn write(config: &Config, config_file: &Path) -> std::io::Result<PathBuf> {
    let mut name = config_file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".dynamic.{:x}", config.config_version));
    let dynamic = config_file.with_file_name(name);
    let mut lines: Vec<String> = config
        .membership_lines()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    write_atomically(&dynamic, lines.join("\n").as_bytes())?;
    // ZooKeeper's `needEraseClientInfoFromStaticConfig`: this member's client address is
    // on its server line, so `clientPort` leaves the static file.
    let erase_client = config
        .servers
        .get(&config.server_id)
        .is_some_and(|s| s.client.is_some());
    edit_static(config_file, &dynamic, erase_client)?;
    Ok(dynamic)
}

/// ZooKeeper's `editStaticConfig`: `zoo.cfg` rewritten as Java writes its properties
/// back (in the iteration order of its hash table, comments gone), without the
/// membership's keys, `dynamicConfigFile` and `peerType` (and `clientPort` and
/// `clientPortAddress` with `erase_client`), then `dynamicConfigFile=<absolute path>`.
pub(crate) fn edit_static(
    config_file: &Path,
    dynamic: &Path,
    erase_client: bool,
) -> std::io::Result<()> {
    let text = std::fs::read_to_string(config_file)?;
    let pairs = crate::properties::parse(&text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    // Every key goes into Java's table, and decides its order, before any is dropped.
    let mut all: Vec<(String, String)> = Vec::new();
    for (key, value) in pairs {
        let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
        match all.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => all.push((key, value)),
        }
    }
    let dropped = |key: &str| {
        [
            "server.",
            "group",
            "weight",
            "dynamicConfigFile",
            "peerType",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || (erase_client && key.starts_with("clientPort"))
    };
    let mut out = String::new();
    for key in java_properties_order(all.iter().map(|(k, _)| k.as_str())) {
        if dropped(key) {
            continue;
        }
        if let Some((_, value)) = all.iter().find(|(k, _)| k == key) {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    let absolute = std::fs::canonicalize(dynamic)?;
    out.push_str(&format!("dynamicConfigFile={}\n", absolute.display()));
    write_atomically(config_file, out.as_bytes())
}

/// Java's `String.hashCode`, over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The order in which a `java.util.Properties` (a `ConcurrentHashMap` of 16 bins to
/// start with) that had `keys` put into it, in that order, iterates them: by bin of the
/// spread hash, each bin in insertion order, resized as the map resizes (each bin split
/// as `ConcurrentHashMap.transfer` splits it).
pub(crate) fn java_properties_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let spread = |key: &str| {
        let h = java_string_hash(key);
        (h ^ ((h as u32) >> 16) as i32) as u32 & 0x7fff_ffff
    };
    let mut table: Vec<Vec<(&str, u32)>> = vec![Vec::new(); 16];
    let mut count = 0usize;
    for key in keys {
        let h = spread(key);
        let n = table.len();
        let Some(bin) = table.get_mut(h as usize & (n - 1)) else {
            continue;
        };
        if bin.iter().any(|(k, _)| *k == key) {
            continue;
        }
        bin.push((key, h));
        count += 1;
        if count >= n - n / 4 {
            table = transfer(table);
        }
    }
    table.into_iter().flatten().map(|(k, _)| k).collect()
}

/// `ConcurrentHashMap.transfer`: each bin of a table of `n` splits into bin `i` and bin
/// `i + n` of one twice the size; the longest tail of nodes bound for one side moves as
/// it is, the nodes before it are put at the heads of their side's lists in turn.
fn transfer(table: Vec<Vec<(&str, u32)>>) -> Vec<Vec<(&str, u32)>> {
    let n = table.len() as u32;
    let mut next: Vec<Vec<(&str, u32)>> = vec![Vec::new(); table.len() * 2];
    for (i, bin) in table.into_iter().enumerate() {
        let Some(first) = bin.first() else {
            continue;
        };
        let mut run_bit = first.1 & n;
        let mut last_run = 0;
        for (at, node) in bin.iter().enumerate().skip(1) {
            let bit = node.1 & n;
            if bit != run_bit {
                run_bit = bit;
                last_run = at;
            }
        }
        let (mut low, mut high) = (Vec::new(), Vec::new());
        let tail = bin.get(last_run..).unwrap_or_default().to_vec();
        if run_bit == 0 {
            low = tail;
        } else {
            high = tail;
        }
        for node in bin.get(..last_run).unwrap_or_default() {
            if node.1 & n == 0 {
                low.insert(0, *node);
            } else {
                high.insert(0, *node);
            }
        }
        if let Some(slot) = next.get_mut(i) {
            *slot = low;
        }
        if let Some(slot) = next.get_mut(i + n as usize) {
            *slot = high;
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order Apache ZooKeeper 3.8.0 (on OpenJDK 17) wrote a `zoo.cfg` back in when it
    /// split it: a golden from the reference, not from this code.
    #[test]
    fn properties_come_back_in_javas_order() {
        let keys = [
            "tickTime",
            "initLimit",
            "syncLimit",
            "dataDir",
            "clientPort",
            "reconfigEnabled",
            "4lw.commands.whitelist",
            "admin.enableServer",
            "server.1",
            "server.2",
            "server.3",
        ];
        let order: Vec<&str> = java_properties_order(keys)
            .into_iter()
            .filter(|k| !k.starts_with("server."))
            .collect();
        assert_eq!(
            order,
            [
                "admin.enableServer",
                "dataDir",
                "tickTime",
                "initLimit",
                "clientPort",
                "4lw.commands.whitelist",
                "syncLimit",
                "reconfigEnabled"
            ]
        );
    }

    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reconfig/");

    fn golden(name: &str) -> String {
        std::fs::read_to_string(format!("{GOLDEN}{name}")).unwrap()
    }

    /// The split Apache ZooKeeper made of a 24-key `zoo.cfg` (its hash table resized
    /// twice on the way), byte for byte: the static files of members 1 and 2 and the
    /// dynamic file.
    #[test]
    fn zoo_cfg_is_split_as_zookeeper_splits_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let data = data.display().to_string();
        let zoo_cfg = dir.path().join("zoo.cfg");
        let given = golden("zoo.cfg").replace("/tmp/rgold/s1/data", &data);
        for member in [1, 2] {
            // Each member's file names its own client port.
            let given = given.replace("clientPort=25301", &format!("clientPort=2530{member}"));
            std::fs::write(&zoo_cfg, &given).unwrap();
            std::fs::write(dir.path().join("data/myid"), member.to_string()).unwrap();
            let mut config = Config::from_file(&zoo_cfg).unwrap();
            assert_eq!(config.config_file.as_deref(), Some(zoo_cfg.as_path()));
            config.config_version = 0x1_0000_0000;
            let dynamic = write(&config, &zoo_cfg).unwrap();
            assert_eq!(dynamic.file_name().unwrap(), "zoo.cfg.dynamic.100000000");
            assert_eq!(
                std::fs::read_to_string(&dynamic).unwrap(),
                golden("zoo.cfg.dynamic.100000000")
            );
            let absolute = std::fs::canonicalize(&dynamic).unwrap();
            let expected = golden(&format!("zoo.cfg.split-{member}"))
                .replace("/tmp/rgold/s1/data", &data)
                .replace("DYNAMIC", &absolute.display().to_string());
            assert_eq!(
                std::fs::read_to_string(&zoo_cfg).unwrap(),
                expected,
                "member {member}"
            );
            // Read back, the two files give the same membership, at its version.
            let back = Config::from_file(&zoo_cfg).unwrap();
            assert_eq!(back.config_version, 0x1_0000_0000);
            assert_eq!(back.membership_lines(), config.membership_lines());
            assert_eq!(
                back.dynamic_config_file.as_deref(),
                Some(absolute.as_path())
            );
            assert_eq!(back.client_addr, config.client_addr, "member {member}");
        }
    }

    #[test]
    fn java_string_hashes() {
        // Values of Java's "abc".hashCode() and "tickTime".hashCode().
        assert_eq!(java_string_hash("abc"), 96354);
        assert_eq!(java_string_hash(""), 0);
    }
}
