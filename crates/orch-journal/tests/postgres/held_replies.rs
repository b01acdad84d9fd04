//! A TCP relay to the PostgreSQL server that, once its client has sent the statement
//! taking a run's lock (`pg_try_advisory_lock`) and then run it, holds back every answer
//! from the server until released: the server has granted the lock, and the client is
//! still waiting to hear so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// Nothing seen yet; the lock's statement was prepared; its run was sent (answers held).
const WATCHING: u8 = 0;
const PREPARED: u8 = 1;
const HOLDING: u8 = 2;

pub(crate) struct HeldReplies {
    /// The relay's port on 127.0.0.1.
    pub(crate) port: u16,
    release: watch::Sender<bool>,
    /// Woken once an answer is held back.
    holding: Arc<Notify>,
}

impl HeldReplies {
    /// Relays connections to the server on `server_port` (inside a tokio runtime).
    pub(crate) async fn start(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let (release, released) = watch::channel(false);
        let holding = Arc::new(Notify::new());
        let held = Arc::clone(&holding);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(("127.0.0.1", server_port))
                    .await
                    .expect("the server");
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                let state = Arc::new(AtomicU8::new(WATCHING));
                let seen = Arc::clone(&state);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        let chunk = &buf[..n];
                        let asks = chunk.windows(20).any(|w| w == b"pg_try_advisory_lock");
                        match seen.load(Ordering::SeqCst) {
                            WATCHING if asks => seen.store(PREPARED, Ordering::SeqCst),
                            // The statement's run: what the server answers now is held.
                            PREPARED => seen.store(HOLDING, Ordering::SeqCst),
                            _ => {}
                        }
                        if to_server.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
                let mut released = released.clone();
                let held = Arc::clone(&held);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                        if state.load(Ordering::SeqCst) == HOLDING {
                            held.notify_one();
                            let _ = released.wait_for(|released| *released).await;
                        }
                        if to_client.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            port,
            release,
            holding,
        }
    }

    /// Returns once an answer from the server is held back.
    pub(crate) async fn holding(&self) {
        self.holding.notified().await;
    }

    /// Lets the held answers through.
    pub(crate) fn release(&self) {
        let _ = self.release.send(true);
    }
}
