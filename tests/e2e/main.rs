//! End-to-end tests of the worker against real Redis, real PostgreSQL and a
//! loopback HTTP receiver. Each test has its own database and key prefix.

mod api;
mod api_executions;
mod api_flows;
mod api_metrics;
mod dead_letters;
mod faults;
mod logs;
mod pipeline;
mod schema;
mod secrets;
