//! TLS listeners of the embedded broker (`mqtts://` and `wss://`).
//!
//! rmqtt 0.24 can serve TLS only with the aws-lc provider, a C library built
//! from source (see `shared/research/security.md`); everything else in `bot`
//! uses rustls with ring. So TLS is terminated here, in-process, with
//! tokio-rustls and ring, and each decrypted connection is passed to an
//! rmqtt listener bound to 127.0.0.1 on a free port. That inner listener
//! takes only connections that start with a PROXY protocol v2 header (which
//! this module writes, naming the real peer), so rmqtt logs and limits the
//! real client address, and a local process that dials the inner port
//! directly is refused before MQTT. Authentication and topic rules are
//! rmqtt's hooks as on every listener: TLS adds confidentiality and, with a
//! client CA, a certificate every client must present (mutual TLS).
//!
//! Limits, every one explicit: the TLS handshake must finish within the
//! broker's connect timeout, and at most `max_connections` TLS connections
//! are open at once per listener (more are closed at once, with a warning
//! logged at most once a second).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// The certificate a TLS listener presents, and the CA its clients'
/// certificates must chain to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate (chain) of the broker.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA: when set, every client must present a certificate signed by
    /// it (mutual TLS), in addition to its user name and password.
    pub client_ca: Option<PathBuf>,
}

/// Settings of one terminator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// TLS connections open at once.
    pub max_connections: usize,
}

/// Accepts TLS on `listener` and relays each connection to `inner` (an
/// rmqtt listener that expects a PROXY v2 header). Runs until aborted.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    inner: SocketAddr,
    limits: Limits,
    kind: &'static str,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_full_warning: Option<Instant> = None;
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, kind, "TLS listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if last_full_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    max = limits.max_connections,
                    kind,
                    "TLS listener full; closing new connections"
                );
                last_full_warning = Some(Instant::now());
            }
            drop(socket);
            continue;
        };
        let local = socket.local_addr().unwrap_or(inner);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(why) = relay(socket, peer, local, acceptor, inner, limits).await {
                tracing::debug!(%peer, kind, %why, "TLS connection ended");
            }
        });
    }
}

async fn relay(
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    inner: SocketAddr,
    limits: Limits,
) -> Result<(), String> {
    let _ = socket.set_nodelay(true);
    let mut tls =
        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(socket)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "TLS handshake refused");
                return Err(format!("handshake: {e}"));
            }
            Err(_) => return Err("handshake timed out".into()),
        };
    let mut upstream = TcpStream::connect(inner)
        .await
        .map_err(|e| format!("inner listener {inner}: {e}"))?;
    let _ = upstream.set_nodelay(true);
    let header = proxy_header(peer, local)?;
    upstream
        .write_all(&header)
        .await
        .map_err(|e| format!("inner listener: {e}"))?;
    tokio::io::copy_bidirectional(&mut tls, &mut upstream)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The PROXY protocol v2 header naming `peer` as the client.
fn proxy_header(peer: SocketAddr, local: SocketAddr) -> Result<Vec<u8>, String> {
    use proxy_protocol::version2::{ProxyAddresses, ProxyCommand, ProxyTransportProtocol};
    let addresses = match (to_v6_if_mixed(peer, local), local) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => ProxyAddresses::Ipv4 {
            source,
            destination,
        },
        (source, destination) => ProxyAddresses::Ipv6 {
            source: as_v6(source),
            destination: as_v6(destination),
        },
    };
    proxy_protocol::encode(proxy_protocol::ProxyHeader::Version2 {
        command: ProxyCommand::Proxy,
        transport_protocol: ProxyTransportProtocol::Stream,
        addresses,
    })
    .map(|b| b.to_vec())
    .map_err(|e| format!("PROXY header: {e}"))
}

fn to_v6_if_mixed(peer: SocketAddr, local: SocketAddr) -> SocketAddr {
    match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V6(_)) => SocketAddr::V6(as_v6(SocketAddr::V4(p))),
        _ => peer,
    }
}

fn as_v6(a: SocketAddr) -> std::net::SocketAddrV6 {
    match a {
        SocketAddr::V6(v6) => v6,
        SocketAddr::V4(v4) => {
            std::net::SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_header_names_the_peer_and_parses_back() {
        let peer: SocketAddr = "192.0.2.7:40000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:8883".parse().expect("addr");
        let bytes = proxy_header(peer, local).expect("header");
        let mut slice = bytes.as_slice();
        match proxy_protocol::parse(&mut slice).expect("parses") {
            proxy_protocol::ProxyHeader::Version2 { addresses, .. } => match addresses {
                proxy_protocol::version2::ProxyAddresses::Ipv4 { source, .. } => {
                    assert_eq!(SocketAddr::V4(source), peer);
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(slice.is_empty());
        let v6 = proxy_header("[::1]:5".parse().expect("addr"), local).expect("mixed");
        assert!(proxy_protocol::parse(&mut v6.as_slice()).is_ok());
    }
}
