//! contact-gateway: one GraphQL schema over five contact providers.

pub mod change;
pub mod config;
pub mod contact;
pub mod fields;
pub mod gateway;
pub mod graphql;
pub mod metrics;
pub mod phone;
pub mod providers;
pub mod sandbox;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod write;
