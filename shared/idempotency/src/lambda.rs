//! The Lambda side: deadlines and a wrapper for `lambda_runtime` handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Idempotency, IdempotencyError};

/// When the invocation will be killed: epoch milliseconds, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline(Option<u64>);

impl Deadline {
    /// No known deadline: the lease lasts
    /// [`in_progress_without_deadline`](crate::IdempotencyConfig::in_progress_without_deadline).
    pub fn none() -> Self {
        Deadline(None)
    }

    /// A deadline in epoch milliseconds (0 means none).
    pub fn at_ms(epoch_ms: u64) -> Self {
        Deadline((epoch_ms > 0).then_some(epoch_ms))
    }

    /// The deadline in epoch milliseconds, if known.
    pub fn epoch_ms(self) -> Option<u64> {
        self.0
    }
}

impl From<u64> for Deadline {
    /// `Context::deadline` as the field holds it: epoch milliseconds.
    fn from(ms: u64) -> Self {
        Deadline::at_ms(ms)
    }
}

impl From<Option<u64>> for Deadline {
    fn from(ms: Option<u64>) -> Self {
        ms.map_or(Deadline::none(), Deadline::at_ms)
    }
}

impl From<SystemTime> for Deadline {
    /// `Context::deadline()` as the method returns it.
    fn from(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Deadline::at_ms(ms)
    }
}

impl From<&Context> for Deadline {
    fn from(ctx: &Context) -> Self {
        Deadline::at_ms(ctx.deadline)
    }
}

/// The future that [`Idempotency::handler`] returns.
pub type HandlerFuture<R> = Pin<Box<dyn Future<Output = Result<R, lambda_runtime::Error>> + Send>>;

impl Idempotency {
    /// Wraps a `lambda_runtime` handler so that it runs at most once per
    /// idempotency key of its payload, with the lease ending at the
    /// invocation's deadline. The handler's own errors pass through as they
    /// are; the crate's errors become [`IdempotencyError`]s boxed as
    /// `lambda_runtime::Error`.
    ///
    /// ```no_run
    /// use lambda_runtime::{service_fn, Error, LambdaEvent};
    /// use serde_json::{json, Value};
    /// use tollgate_idempotency::{Idempotency, IdempotencyConfig};
    ///
    /// async fn charge(event: LambdaEvent<Value>) -> Result<Value, Error> {
    ///     Ok(json!({"charged": event.payload["order_id"]}))
    /// }
    ///
    /// # async fn main_() -> Result<(), Error> {
    /// let aws = aws_config::load_from_env().await;
    /// let config = IdempotencyConfig::new("tollgate-idempotency").namespace("charge").key_path("order_id")?;
    /// let idem = Idempotency::new(aws_sdk_dynamodb::Client::new(&aws), config);
    /// lambda_runtime::run(service_fn(idem.handler(charge))).await
    /// # }
    /// ```
    pub fn handler<A, R, E, F, Fut>(
        &self,
        f: F,
    ) -> impl Fn(LambdaEvent<A>) -> HandlerFuture<R> + Clone + Send + Sync
    where
        A: Serialize + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        E: Into<lambda_runtime::Error> + Send + 'static,
        F: Fn(LambdaEvent<A>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let idem = self.clone();
        let f = Arc::new(f);
        move |event: LambdaEvent<A>| {
            let idem = idem.clone();
            let f = Arc::clone(&f);
            Box::pin(async move {
                let deadline = Deadline::from(&event.context);
                let key = idem
                    .key_for(&event.payload)
                    .map_err(|e| Box::new(e) as lambda_runtime::Error)?;
                let result = match key {
                    Some(key) => idem.run_with_key(&key, deadline, move || f(event)).await,
                    None => {
                        idem.missing_key::<crate::Never>()
                            .map_err(|e| Box::new(e) as lambda_runtime::Error)?;
                        f(event).await.map_err(IdempotencyError::Handler)
                    }
                };
                result.map_err(|e| match e.cast::<crate::Never>() {
                    Ok(own) => Box::new(own) as lambda_runtime::Error,
                    Err(handler) => handler.into(),
                })
            }) as HandlerFuture<R>
        }
    }
}
