//! The GraphQL schema: `Query`, types, and error codes.

pub mod errors;
pub mod mutation;
pub mod query;
pub mod types;

use crate::config::{CacheConfig, LimitsConfig};
use crate::gateway::Gateway;
use async_graphql::{EmptySubscription, SDLExportOptions, Schema};
use mutation::MutationRoot;
use query::{QueryRoot, QuerySettings};
use std::sync::Arc;

pub type AppSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// The schema with its limits, serving `gateway`.
pub fn build_schema(
    gateway: Arc<Gateway>,
    limits: &LimitsConfig,
    default_region: &str,
) -> AppSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .enable_federation()
        .extension(errors::EdgeCodes)
        .limit_depth(limits.max_depth)
        .limit_directives(limits.max_directives_per_field)
        .limit_complexity(limits.max_complexity)
        .data(gateway)
        .data(QuerySettings {
            default_region: default_region.to_string(),
        })
        .finish()
}

/// The SDL, federation directives included: what `contact-gateway schema` prints.
pub fn sdl() -> String {
    let gateway = Arc::new(Gateway::new(Default::default(), &CacheConfig::default()));
    build_schema(gateway, &LimitsConfig::default(), "US")
        .sdl_with_options(SDLExportOptions::new().federation())
}
