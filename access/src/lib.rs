//! Vigil's access-control state, kept in the data directory: who may call (API keys with roles
//! and rate limits, [`keys`]), and what they did (the hash-chained audit log, [`audit`]). Both
//! are files shared by the server and the CLI (`vigil keys`, `vigil audit verify`), changed under
//! file locks and written durably ([`files`]). On ClickHouse the keys are shared by every node,
//! and each node's audit chain is shipped to the store ([`shared_audit`]). Rate limits per key
//! and failed authentications per address are token buckets ([`throttle`]).

pub mod audit;
pub mod files;
pub mod keys;
pub mod shared_audit;
pub mod throttle;
