//! A userspace impairment relay: a UDP forwarder that loses, delays and
//! reorders packets by seeded randomness, each way, for links the kernel
//! here cannot impair (no `netem`). Each client address gets its own
//! socket towards the upstream, as behind a NAT; the upstream's answers go
//! back to the client through the relay's listening socket.
//!
//! Put it in front of a TURN server and hand clients its address as the
//! TURN server's: all of a relay-only client's media then crosses it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the relay does to each packet, each way.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Chance that a packet is lost, 0–1.
    pub loss: f64,
    /// Delay every packet gets.
    pub delay: Duration,
    /// Extra delay, uniform between zero and this: packets closer together
    /// than it may arrive out of order.
    pub jitter: Duration,
    pub seed: u64,
}

/// Packets the relay forwarded and lost.
#[derive(Debug, Default)]
pub struct Counts {
    pub forwarded: AtomicU64,
    pub lost: AtomicU64,
}

impl Counts {
    /// The share of packets lost so far.
    pub fn loss(&self) -> f64 {
        let lost = self.lost.load(Ordering::Relaxed) as f64;
        let all = lost + self.forwarded.load(Ordering::Relaxed) as f64;
        if all == 0.0 {
            0.0
        } else {
            lost / all
        }
    }
}

/// A running relay; it stops when dropped.
pub struct ImpairRelay {
    /// Where clients send.
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    task: JoinHandle<()>,
    /// The tasks carrying each flow's answers back.
    flows: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// xorshift64*: a small seeded generator, the same run to run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One direction's impairment: decides each packet's fate and sends the
/// survivors after their delay.
#[derive(Clone)]
struct Lane {
    imp: Impairment,
    rng: Arc<Mutex<Rng>>,
    counts: Arc<Counts>,
}

impl Lane {
    fn new(imp: Impairment, seed: u64, counts: Arc<Counts>) -> Lane {
        Lane {
            imp,
            rng: Arc::new(Mutex::new(Rng(seed | 1))),
            counts,
        }
    }

    fn send(&self, socket: &Arc<UdpSocket>, packet: Vec<u8>, to: SocketAddr) {
        let (lost, extra) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.next_f64() < self.imp.loss,
                self.imp.jitter.mul_f64(rng.next_f64()),
            )
        };
        if lost {
            self.counts.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counts.forwarded.fetch_add(1, Ordering::Relaxed);
        let delay = self.imp.delay + extra;
        let socket = socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = socket.send_to(&packet, to).await;
        });
    }
}

impl ImpairRelay {
    /// Listens on `listen` (port 0 for any) and forwards to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, imp: Impairment) -> ImpairRelay {
        let front = Arc::new(UdpSocket::bind(listen).await.unwrap());
        let addr = front.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let up = Lane::new(imp, imp.seed, counts.clone());
        let down = Lane::new(imp, imp.seed.rotate_left(17) ^ 0x9e37_79b9, counts.clone());
        let answer_tasks = Arc::new(Mutex::new(Vec::new()));
        let tasks = answer_tasks.clone();
        let task = tokio::spawn(async move {
            let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            while let Ok((n, client)) = front.recv_from(&mut buf).await {
                let back = match flows.entry(client) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => {
                        let back = Arc::new(UdpSocket::bind((upstream.ip(), 0)).await.unwrap());
                        let answers = {
                            let (back, front, down) = (back.clone(), front.clone(), down.clone());
                            tokio::spawn(async move {
                                let mut buf = vec![0u8; 65536];
                                while let Ok((n, _)) = back.recv_from(&mut buf).await {
                                    down.send(&front, buf[..n].to_vec(), client);
                                }
                            })
                        };
                        tasks.lock().unwrap().push(answers.abort_handle());
                        e.insert(back.clone());
                        back
                    }
                };
                up.send(&back, buf[..n].to_vec(), upstream);
            }
        });
        ImpairRelay {
            addr,
            counts,
            task,
            flows: answer_tasks,
        }
    }
}

impl Drop for ImpairRelay {
    fn drop(&mut self) {
        self.task.abort();
        for t in self.flows.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_relay_loses_about_its_share_each_way_and_delays_the_rest() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let imp = Impairment {
            loss: 0.2,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            seed: 7,
        };
        let relay = ImpairRelay::start(
            "127.0.0.1:0".parse().unwrap(),
            server.local_addr().unwrap(),
            imp,
        )
        .await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sent_at = std::time::Instant::now();
        for i in 0..500u32 {
            client.send_to(&i.to_be_bytes(), relay.addr).await.unwrap();
        }
        let mut buf = [0u8; 16];
        let mut got = 0;
        let (mut from, mut first) = (None, None);
        while let Ok(Ok((_, addr))) =
            tokio::time::timeout(Duration::from_millis(300), server.recv_from(&mut buf)).await
        {
            got += 1;
            from = Some(addr);
            first.get_or_insert(sent_at.elapsed());
        }
        assert!(
            first.is_some_and(|t| t >= Duration::from_millis(20)),
            "the first packet took {first:?}"
        );
        assert!((340..=460).contains(&got), "about 80 % through: {got}");
        // Answers go back through the relay, to the client.
        let from = from.unwrap();
        for i in 0..500u32 {
            server.send_to(&i.to_be_bytes(), from).await.unwrap();
        }
        let mut back = 0;
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await
        {
            back += 1;
        }
        assert!((340..=460).contains(&back), "about 80 % back: {back}");
        assert!(
            (relay.counts.loss() - 0.2).abs() < 0.06,
            "{}",
            relay.counts.loss()
        );
    }
}
