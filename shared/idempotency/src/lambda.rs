//! The Lambda side: a wrapper for `lambda_runtime` handlers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_runtime::LambdaEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::deadline::Deadline;
use crate::error::{IdempotencyError, Never};
use crate::layer::Idempotency;

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
                        idem.missing_key::<Never>()
                            .map_err(|e| Box::new(e) as lambda_runtime::Error)?;
                        f(event).await.map_err(IdempotencyError::Handler)
                    }
                };
                result.map_err(|e| match e.cast::<Never>() {
                    Ok(own) => Box::new(own) as lambda_runtime::Error,
                    Err(handler) => handler.into(),
                })
            }) as HandlerFuture<R>
        }
    }
}
