//! The listening sockets of `vigil serve`: plain TCP, or TLS (rustls) whose certificate is read
//! again from its files when they change, optionally requiring client certificates (mutual TLS).
//! One accepted-connection type serves both ports: tonic takes [`Incoming`] as a stream of
//! connections, axum as a [`axum::serve::Listener`].

mod certificates;
mod incoming;

pub use certificates::{Certificates, Protocols, TlsConfig, TlsError};
pub use incoming::{ClientAddr, Connection, Incoming};
