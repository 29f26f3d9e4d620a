//! The GraphQL schema: `Query`, types, and error codes.

pub mod errors;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use crate::config::{CacheConfig, LimitsConfig};
use crate::gateway::Gateway;
use async_graphql::{SDLExportOptions, Schema, SchemaBuilder};
use mutation::MutationRoot;
use query::{QueryRoot, QuerySettings};
use std::sync::Arc;
use subscription::SubscriptionRoot;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema with its limits, serving `gateway`. Its `_service { sdl }` leaves the
/// subscription out, as federation routers expect (they compose queries and mutations).
pub fn build_schema(
    gateway: Arc<Gateway>,
    limits: &LimitsConfig,
    default_region: &str,
) -> AppSchema {
    builder(gateway, limits, default_region).finish()
}

fn builder(
    gateway: Arc<Gateway>,
    limits: &LimitsConfig,
    default_region: &str,
) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .enable_federation()
        .limit_depth(limits.max_depth)
        .limit_directives(limits.max_directives_per_field)
        .limit_complexity(limits.max_complexity)
        .data(gateway)
        .data(QuerySettings {
            default_region: default_region.to_string(),
        })
}

/// The SDL, federation directives and the subscription included: what `contact-gateway
/// schema` prints.
pub fn sdl() -> String {
    let gateway = Arc::new(Gateway::new(Default::default(), &CacheConfig::default()));
    builder(gateway, &LimitsConfig::default(), "US")
        .enable_subscription_in_federation()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}
