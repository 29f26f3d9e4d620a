//! What the caller may do, as the HTTP edge established it: with `[auth]` every request
//! carries `MayWrite`, and a mutation field of a read-only caller fails `FORBIDDEN` before its
//! resolver runs (so nothing is sent upstream).

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{PathSegment, ServerError, ServerResult, Value};
use std::sync::Arc;

/// Request data: whether the caller may run mutations. Absent without `[auth]`.
#[derive(Clone, Copy, Debug)]
pub struct MayWrite(pub bool);

/// Refuses mutation fields to callers without `MayWrite(true)`.
pub struct WriteAccess;

impl ExtensionFactory for WriteAccess {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(WriteAccess)
    }
}

#[async_trait::async_trait]
impl Extension for WriteAccess {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let refused =
            info.parent_type == "Mutation" && ctx.data_opt::<MayWrite>().is_some_and(|may| !may.0);
        if refused {
            let mut error = ServerError::new(
                "this credential may only read: mutations need the write role or scope",
                Some(info.field.name.pos),
            );
            error.path = info
                .path_node
                .to_string_vec()
                .into_iter()
                .map(PathSegment::Field)
                .collect();
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "FORBIDDEN");
            return Err(error);
        }
        next.run(ctx, info).await
    }
}
