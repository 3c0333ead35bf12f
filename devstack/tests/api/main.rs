//! devstack as a user runs it: the real binary, real children, real MariaDB and Redis.

mod auth;
mod checkout;
mod cluster;
mod data_platform;
mod k6;
mod k8s;
mod logs;
mod monitoring;
mod replicas;
mod stack;
mod traces;
