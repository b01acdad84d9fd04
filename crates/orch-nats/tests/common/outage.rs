//! A network outage for one client: a loopback TCP relay in front of a server, whose
//! connections a test cuts and refuses until it lets them through again, or slows down,
//! while the server and every other client go on.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The relay. Its thread takes connections until the test process ends.
pub struct Outage {
    port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    /// How many connections were refused while down.
    refused: AtomicU64,
    /// How long, in milliseconds, each piece of what the server sends is held back.
    reply_delay_ms: AtomicU64,
    /// Once the server has sent this many bytes (over all connections), the piece after
    /// is held back for `stall_ms`, once; 0: no stall to come.
    stall_after: AtomicU64,
    stall_ms: AtomicU64,
    /// How many bytes the server has sent through the relay.
    replied: AtomicU64,
    /// Both ends of every connection relayed so far.
    streams: Mutex<Vec<TcpStream>>,
    /// How many relayed connections are still relaying what the server sends: until
    /// the server closes one (or its client can no longer be written to).
    open: AtomicU64,
}

impl Outage {
    /// A relay to the server on loopback port `server_port`, letting connections through.
    pub fn relay_to(server_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared::default());
        let relay = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if relay.down.load(Ordering::SeqCst) {
                    relay.refused.fetch_add(1, Ordering::SeqCst);
                    continue; // dropped: refused while the outage lasts
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                if let Err(error) = relay.relay(client, server) {
                    eprintln!("relaying a connection: {error}");
                }
            }
        });
        Self { port, shared }
    }

    /// The URL a client connects to the server through.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every connection relayed so far and refuses new ones.
    pub fn begin(&self) {
        self.shared.down.store(true, Ordering::SeqCst);
        let streams = std::mem::take(&mut *self.shared.streams.lock().expect("not poisoned"));
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// How many connections were refused while the outage lasted: once one was, its
    /// client has seen its connection cut.
    #[allow(dead_code)] // not every test binary asks
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// How many connections through the relay the server has not closed yet. The server
    /// closes one once its client closed it and it has acted on everything the client
    /// sent, or when the outage cuts it.
    #[allow(dead_code)] // not every test binary asks
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Lets connections through again.
    pub fn end(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Holds back each piece of what the server sends (what it has sent by the time the
    /// relay reads again) for `delay`: a slow link.
    #[allow(dead_code)] // not every test binary slows its link down
    pub fn slow_replies(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).expect("a delay in milliseconds");
        self.shared.reply_delay_ms.store(millis, Ordering::SeqCst);
    }

    /// Holds back what the server sends for `hold`, once, as soon as it has sent more
    /// than `bytes` through the relay: a server that stalls midway through an answer.
    #[allow(dead_code)] // not every test binary stalls its link
    pub fn stall_once_after(&self, bytes: u64, hold: Duration) {
        let millis = u64::try_from(hold.as_millis()).expect("a hold in milliseconds");
        self.shared.stall_ms.store(millis, Ordering::SeqCst);
        self.shared.stall_after.store(bytes, Ordering::SeqCst);
    }
}

impl Shared {
    /// How long to hold back a piece the server sent, `read` bytes long.
    fn hold_for(&self, read: usize) -> Duration {
        let replied = self.replied.fetch_add(read as u64, Ordering::SeqCst);
        let stall_after = self.stall_after.load(Ordering::SeqCst);
        let stall = stall_after > 0
            && replied > stall_after
            && (self.stall_after.compare_exchange(
                stall_after,
                0,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ))
            .is_ok();
        let millis = match stall {
            true => self.stall_ms.load(Ordering::SeqCst),
            false => self.reply_delay_ms.load(Ordering::SeqCst),
        };
        Duration::from_millis(millis)
    }

    fn relay(self: &Arc<Self>, client: TcpStream, server: TcpStream) -> io::Result<()> {
        let copy = |mut from: TcpStream, mut to: TcpStream| {
            std::thread::spawn(move || {
                let _ = io::copy(&mut from, &mut to);
                // The server reads on to the end of what was sent, then closes.
                let _ = to.shutdown(Shutdown::Write);
            });
        };
        {
            let mut streams = self.streams.lock().expect("not poisoned");
            streams.push(client.try_clone()?);
            streams.push(server.try_clone()?);
        }
        let (client_reader, server_writer) = (client.try_clone()?, server.try_clone()?);
        self.open.fetch_add(1, Ordering::SeqCst);
        copy(client_reader, server_writer);
        let (mut from, mut to) = (server, client);
        let shared = Arc::clone(self);
        std::thread::spawn(move || {
            let mut piece = vec![0; 1 << 20];
            while let Ok(read) = from.read(&mut piece) {
                std::thread::sleep(shared.hold_for(read));
                if read == 0 || to.write_all(&piece[..read]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }
}
