//! The PROXY protocol (HAProxy's, v1 text and v2 binary): received from a trusted load
//! balancer in front of a listener (`proxy_protocol`), sent to TCP upstreams
//! (`upstream_proxy_protocol`). The `ppp` crate parses and builds the headers; this module
//! reads exactly one header off the socket, so the TLS handshake starts at the next byte.

use std::net::SocketAddr;

use ppp::{v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::raw::ProxyVersion;

/// The longest v1 header (the specification's bound, `\r\n` included).
const V1_MAX: usize = 107;
/// v2: the fixed part (signature, version, family, length).
const V2_FIXED: usize = 16;
/// v2: the most address and TLV bytes accepted; HAProxy's own headers are far shorter.
const V2_MAX_PAYLOAD: usize = 4096;
/// v2's signature, the first 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection's PROXY protocol header was refused. The connection is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    #[error("{0} is not in trusted_proxies: only they may send a PROXY protocol header")]
    Untrusted(std::net::IpAddr),
    #[error("no valid PROXY protocol header: {0}")]
    Invalid(String),
    #[error("connection closed before its PROXY protocol header ended: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY protocol header that starts `tcp`, and nothing after it. Returns the
/// client's address, or `None` for a header that names none (`UNKNOWN`, `LOCAL`: the load
/// balancer's own health checks).
pub async fn receive(tcp: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = vec![0u8; V2_FIXED];
    // Both versions are longer than 8 bytes; 8 tell them apart.
    tcp.read_exact(&mut buf[..8]).await?;
    if buf.starts_with(b"PROXY ") {
        return receive_v1(tcp, buf).await;
    }
    if !V2_SIGNATURE.starts_with(&buf[..8]) {
        return Err(ProxyHeaderError::Invalid(
            "the connection does not start with one (is the load balancer set to send it?)".into(),
        ));
    }
    tcp.read_exact(&mut buf[8..V2_FIXED]).await?;
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::Invalid(format!(
            "a v2 header of {payload} bytes"
        )));
    }
    buf.resize(V2_FIXED + payload, 0);
    tcp.read_exact(&mut buf[V2_FIXED..]).await?;
    let header =
        v2::Header::try_from(&buf[..]).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    Ok(match (header.command, header.addresses) {
        (v2::Command::Local, _) => None,
        (_, v2::Addresses::IPv4(a)) => Some(SocketAddr::from((a.source_address, a.source_port))),
        (_, v2::Addresses::IPv6(a)) => Some(SocketAddr::from((a.source_address, a.source_port))),
        (_, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
    })
}

/// The rest of a v1 header, a byte at a time up to its `\r\n` (never past it).
async fn receive_v1(
    tcp: &mut TcpStream,
    mut buf: Vec<u8>,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    buf.truncate(8);
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return Err(ProxyHeaderError::Invalid(format!(
                "a v1 header longer than {V1_MAX} bytes"
            )));
        }
        buf.push(tcp.read_u8().await?);
    }
    let header =
        v1::Header::try_from(&buf[..]).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    Ok(match header.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Unknown => None,
    })
}

/// The header that tells an upstream the connection comes from `client` to `local`.
pub fn header(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    // An IPv4 client on an IPv6 socket (::ffff:a.b.c.d) is written as IPv4.
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (client, local) = (canonical(client), canonical(local));
    match version {
        ProxyVersion::V1 => {
            let addresses = match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    v1::Addresses::new_tcp4(*c.ip(), *l.ip(), c.port(), l.port())
                }
                (SocketAddr::V6(c), SocketAddr::V6(l)) => {
                    v1::Addresses::new_tcp6(*c.ip(), *l.ip(), c.port(), l.port())
                }
                _ => v1::Addresses::Unknown,
            };
            addresses.to_string().into_bytes()
        }
        ProxyVersion::V2 => v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (client, local),
        )
        .build()
        // Building into a Vec cannot fail; a header naming no address says as much.
        .unwrap_or_else(|_| {
            V2_SIGNATURE
                .iter()
                .copied()
                .chain([0x20, 0, 0, 0])
                .collect()
        }),
    }
}
