//! Cuttable links between members: every member reaches every other member's quorum and
//! election ports through a TCP forwarder of its own (one per directed pair and port), so
//! that a link can be cut: its connections are dropped and new ones refused until it is
//! healed. Cutting both directions between a member and the rest partitions it; cutting
//! one leaves it unable to open connections while the others still reach it.

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;

/// The forwarders, by (from, to) member.
#[derive(Default)]
pub(crate) struct Links {
    cuts: HashMap<(usize, usize), Vec<watch::Sender<bool>>>,
}

impl Links {
    /// A forwarder for `from` reaching `to` at `port`; returns the port `from` uses.
    pub(crate) fn proxy(
        &mut self,
        runtime: &Handle,
        from: usize,
        to: usize,
        port: u16,
    ) -> Result<u16> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?.port();
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let (cut, _) = watch::channel(false);
        let cut_rx = cut.subscribe();
        let _entered = runtime.enter();
        let listener = TcpListener::from_std(std_listener)?;
        runtime.spawn(accept(listener, target, cut_rx));
        self.cuts.entry((from, to)).or_default().push(cut);
        Ok(local)
    }

    /// Cuts (or heals) every forwarder from `from` to `to`.
    pub(crate) fn set(&self, from: usize, to: usize, cut: bool) {
        for link in self.cuts.get(&(from, to)).into_iter().flatten() {
            link.send_replace(cut);
        }
    }

    /// Cuts `member` off from every other member in both directions (`both`), or only
    /// its own connections to them.
    pub(crate) fn isolate(&self, member: usize, n: usize, both: bool) {
        for other in (0..n).filter(|o| *o != member) {
            self.set(member, other, true);
            if both {
                self.set(other, member, true);
            }
        }
    }

    /// Heals every link.
    pub(crate) fn heal(&self) {
        for links in self.cuts.values() {
            for link in links {
                link.send_replace(false);
            }
        }
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, cut: watch::Receiver<bool>) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            // Refused: the connection closes at once.
            drop(inbound);
            continue;
        }
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            // A link whose controls are gone is never cut again.
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                Ok(_) = cut.wait_for(|c| *c) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_once(port: u16) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"ping").await?;
        let mut buf = [0_u8; 4];
        tokio::time::timeout(std::time::Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        Ok(buf.to_vec())
    }

    #[test]
    fn a_link_forwards_is_cut_and_heals() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let target = runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            port
        });
        let mut links = Links::default();
        let port = links.proxy(runtime.handle(), 0, 1, target).unwrap();
        runtime.block_on(async {
            assert_eq!(echo_once(port).await.unwrap(), b"ping");
            links.isolate(0, 2, true);
            assert!(echo_once(port).await.is_err(), "a cut link refuses");
            links.heal();
            assert_eq!(
                echo_once(port).await.unwrap(),
                b"ping",
                "a healed link forwards"
            );
            links.isolate(1, 2, false);
            assert_eq!(
                echo_once(port).await.unwrap(),
                b"ping",
                "only 1's own links are cut"
            );
            links.isolate(1, 2, true);
            assert!(echo_once(port).await.is_err());
            links.heal();
            assert_eq!(echo_once(port).await.unwrap(), b"ping");
        });
        // Without its controls, a link goes on forwarding.
        drop(links);
        runtime.block_on(async {
            assert_eq!(echo_once(port).await.unwrap(), b"ping");
        });
    }
}
