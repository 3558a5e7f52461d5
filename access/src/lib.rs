//! Vigil's access-control state, kept in the data directory: who may call (API keys with roles
//! and rate limits, [`keys`]), and what they did (the hash-chained audit log, [`audit`]). Both
//! are files shared by the server and the CLI (`vigil keys`, `vigil audit verify`), changed under
//! file locks and written durably ([`files`]).

pub mod audit;
pub mod files;
pub mod keys;
