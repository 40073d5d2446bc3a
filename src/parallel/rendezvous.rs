//! Forming a group across machines: the first machine (node 0) makes the NCCL id and serves it
//! over TCP at the master address; every other node connects, says its node rank and reads the
//! id (torchrun's `MASTER_ADDR:MASTER_PORT` convention). Plain bytes: nothing here needs a GPU.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// How long nodes wait for each other before giving up with an error.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Node 0: serves `id` to nodes `1..nodes` at `addr` (`host:port`), each once. Fails after
/// `timeout` naming the nodes that never connected.
pub fn serve(addr: &str, id: &[u8], nodes: usize, timeout: Duration) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| Error::Msg(format!("rendezvous: cannot listen on {addr}: {e}")))?;
    serve_on(listener, id, nodes, timeout)
}

/// [`serve`] on a listener already bound (tests bind port 0).
pub fn serve_on(listener: TcpListener, id: &[u8], nodes: usize, timeout: Duration) -> Result<()> {
    let io = |e: std::io::Error| Error::Msg(format!("rendezvous: {e}"));
    listener.set_nonblocking(true).map_err(io)?;
    let deadline = Instant::now() + timeout;
    let mut seen = vec![false; nodes];
    seen[0] = true;
    while seen.iter().any(|s| !s) {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                stream.set_nonblocking(false).map_err(io)?;
                stream.set_read_timeout(Some(timeout)).map_err(io)?;
                let mut rank = [0u8; 4];
                stream.read_exact(&mut rank).map_err(io)?;
                let rank = u32::from_le_bytes(rank) as usize;
                if rank == 0 || rank >= nodes {
                    return Err(Error::Msg(format!(
                        "rendezvous: {peer} says it is node {rank}, but there are {nodes} nodes \
                         (1 to {} connect to node 0)",
                        nodes - 1
                    )));
                }
                if std::mem::replace(&mut seen[rank], true) {
                    return Err(Error::Msg(format!(
                        "rendezvous: node {rank} connected twice (the second from {peer}): two \
                         machines were given the same --node-rank"
                    )));
                }
                stream.write_all(id).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing: Vec<usize> = (0..nodes).filter(|&r| !seen[r]).collect();
                    return Err(Error::Msg(format!(
                        "rendezvous: nodes {missing:?} did not connect within {} s",
                        timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}

/// Node `rank` (≥ 1): connects to node 0 at `addr` (retrying while it starts) and reads the
/// `len`-byte id.
pub fn fetch(addr: &str, rank: usize, len: usize, timeout: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                return Err(Error::Msg(format!(
                    "rendezvous: node {rank} cannot reach node 0 at {addr} within {} s: {e}",
                    timeout.as_secs()
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let io = |e: std::io::Error| Error::Msg(format!("rendezvous with {addr}: {e}"));
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(&(rank as u32).to_le_bytes()).map_err(io)?;
    let mut id = vec![0u8; len];
    stream.read_exact(&mut id).map_err(io)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_receives_the_id() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let id: Vec<u8> = (0..128u8).collect();
        let t = Duration::from_secs(20);
        std::thread::scope(|s| {
            let server = s.spawn(|| serve_on(listener, &id, 3, t));
            let a = s.spawn(|| fetch(&addr, 1, 128, t));
            let b = s.spawn(|| fetch(&addr, 2, 128, t));
            assert_eq!(a.join().unwrap().unwrap(), id);
            assert_eq!(b.join().unwrap().unwrap(), id);
            server.join().unwrap().unwrap();
        });
    }

    #[test]
    fn a_missing_node_is_named() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = serve_on(listener, &[0; 4], 2, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nodes [1] did not connect"), "{err}");
    }
}
