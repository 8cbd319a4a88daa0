//! What the ensemble tests share.

/// A free loopback port, below the ephemeral range (32768 and up on Linux): a port picked
/// there may become some connection's source port before the server binds it. Each
/// test binary draws from its own block, never the same port twice.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 48) * 256;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 256) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
