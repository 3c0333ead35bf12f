//! devstack: the whole mesh on one machine, for development, demos and black-box tests.
//!
//! Every service runs as a child process (this same executable, re-run as
//! `devstack service <name>`), so a crash, a `kill -9` or a restart behaves as it would
//! in Kubernetes: the [`supervisor`] restarts a child that dies, with back-off.
//!
//! Map:
//! - [`cli`]: the flags of API.md ("The dev stack").
//! - [`dev_key`]: the dev Ed25519 signing key under `--state-dir`, and the tokens it signs.
//! - [`preflight`]: MySQL and Redis reachable (one clear line if not), `--fresh`.
//! - [`own_servers`]: MySQL and Redis of devstack's own when none is named or at the defaults.
//! - [`plan`]: which processes to run, on which ports, with which environment.
//! - [`supervisor`]: runs, restarts and stops the children.
//! - [`logs`]: reads the children's output: the terminal (via [`render`]) and a file per child.
//! - [`data_platform`]: the mock external data platform (also used by payment tests).
//! - [`seed`]: `--seed-demo` data, loaded through the public API.

pub mod cli;
pub use data_platform;
pub mod dev_key;
pub mod logs;
pub mod own_servers;
pub mod plan;
pub mod preflight;
pub mod render;
pub mod seed;
pub mod supervisor;
