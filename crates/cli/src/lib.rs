//! The `chipledger` command's library part: API client, local process networks, transaction
//! building. Shared by the binary, the benchmarks and the integration tests.
#![forbid(unsafe_code)]

pub mod access_cmd;
pub mod access_demo;
pub mod audit_cmd;
pub mod browser;
pub mod client;
pub mod command_cmd;
pub mod data_cmd;
pub mod data_net;
pub mod device_cmd;
pub mod firmware_cmd;
pub mod firmware_trust;
pub mod fleet_cmd;
pub mod fleet_rollout;
pub mod fleet_setup;
pub mod gateway_cmd;
pub mod gateway_http;
pub mod keyservice;
pub mod net;
pub mod simulate;
pub mod txcmd;
pub mod update_agent;
pub mod zk_cmd;
