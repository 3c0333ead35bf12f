//! Load generator and benchmark report for the mesh.
//!
//! Every scenario is a closed loop by default ([`driver::run_closed_loop`]): N client tasks,
//! each sending its next request when the previous one answered, bounded by a duration and an
//! optional request budget. The REST scenarios (checkout, coupon, product-read) can also run
//! open loop (`--rate`): a fixed arrival rate, latency counted from each request's due time
//! ([`driver::Pace`]). A scenario sets up its own data, runs, verifies what it can
//! (zero oversell, exact sell-out) and returns a [`report::Report`], printed as a table
//! and one JSON line. `bench <service>` also measures the raw backend in the same run and
//! prints our throughput as a ratio of it (DESIGN.md, "Performance targets").
//!
//! Adding a scenario: a function in `scenarios/` that builds its clients, calls
//! `run_closed_loop(clients, limits, |client_idx, seq| async { .. Outcome })` (or
//! [`driver::run_phased`] for a race followed by what comes after it) and returns a
//! `Report`; then a subcommand in `cli`. Services are reached over gRPC, or through the
//! gateway over REST ([`scenarios::RestPool`]): there an op returns its outcome with the HTTP
//! status (`outcome.over_http(..)`), the report counts the statuses, and any 5xx or lost
//! answer fails the run. REST connections come from many loopback source addresses, as a
//! crowd's would, so a per-address rate limiter sees many callers ([`net`], which also keeps
//! all traffic on loopback); the open-files limit is raised to fit them ([`fds`]). Every
//! report carries the CPU loadgen and its peers on the box ([`procfs::PEERS`]) used during
//! its run, in cores and in microseconds per operation; the checkout reports also carry
//! MySQL's statements and transactions per order ([`mysql_counters`]).

pub mod bench;
pub mod cli;
pub mod driver;
pub mod fds;
pub mod mysql_counters;
pub mod net;
pub mod procfs;
pub mod raw;
pub mod report;
pub mod scenarios;
pub mod spawn;
