//! [`Handler`]: implemented for async functions whose arguments are extractors.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use pitaya_core::{BoxFuture, Error};

use crate::docs::Signature;
use crate::extract::{FromRequest, FromRequestParts};
use crate::reply::IntoReply;
use crate::{Reply, Request};

/// Whether a route answers (request) or not (notify), from the handler's return type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandlerKind {
    /// Returns `Result<R, Error>`; the client gets exactly one response.
    Request,
    /// Returns `()`; the client gets nothing back.
    Notify,
}

/// An async function usable as a handler. `T` is a marker of its argument types.
pub trait Handler<T>: Clone + Send + Sync + 'static {
    /// Request or notify, from the return type.
    const KIND: HandlerKind;

    /// Extracts the arguments, runs the function and encodes its reply.
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Reply, Error>>;

    /// The Rust types of its payload and reply, for the documentation route
    /// ([`docs`](crate::docs)). The default knows neither.
    fn signature() -> Signature {
        Signature { kind: Self::KIND, input: None, output: None }
    }
}

impl<F, Fut, Out> Handler<()> for F
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send + 'static,
    Out: IntoReply,
{
    const KIND: HandlerKind = Out::KIND;

    fn call(&self, req: Request) -> BoxFuture<'static, Result<Reply, Error>> {
        let fut = self();
        Box::pin(async move { fut.await.into_reply(req.serializer.as_ref()) })
    }

    fn signature() -> Signature {
        Signature::without_input::<Out>(Out::KIND)
    }
}

macro_rules! impl_handler {
    ([$($parts:ident),*], $last:ident) => {
        impl<F, Fut, Out, M, $($parts,)* $last> Handler<(M, $($parts,)* $last,)> for F
        where
            F: Fn($($parts,)* $last) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = Out> + Send + 'static,
            Out: IntoReply,
            $($parts: FromRequestParts + Send + 'static,)*
            $last: FromRequest<M> + Send + 'static,
            M: 'static,
        {
            const KIND: HandlerKind = Out::KIND;

            #[allow(non_snake_case)]
            fn call(&self, req: Request) -> BoxFuture<'static, Result<Reply, Error>> {
                let serializer = req.serializer.clone();
                let args = (|| -> Result<_, Error> {
                    $(let $parts = $parts::from_request_parts(&req)?;)*
                    let $last = $last::from_request(req)?;
                    Ok(($($parts,)* $last,))
                })();
                let f = self.clone();
                Box::pin(async move {
                    let ($($parts,)* $last,) = args?;
                    f($($parts,)* $last).await.into_reply(serializer.as_ref())
                })
            }

            fn signature() -> Signature {
                // A context extractor may come last too (`FromRequest` via parts): the
                // handler then reads no payload.
                if std::any::type_name::<M>().ends_with("ViaParts") {
                    Signature::without_input::<Out>(Out::KIND)
                } else {
                    Signature::of::<$last, Out>(Out::KIND)
                }
            }
        }
    };
}

impl_handler!([], T1);
impl_handler!([T1], T2);
impl_handler!([T1, T2], T3);
impl_handler!([T1, T2, T3], T4);
impl_handler!([T1, T2, T3, T4], T5);
impl_handler!([T1, T2, T3, T4, T5], T6);
impl_handler!([T1, T2, T3, T4, T5, T6], T7);
impl_handler!([T1, T2, T3, T4, T5, T6, T7], T8);

/// A handler with its argument types erased, as stored in the router.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn kind(&self) -> HandlerKind;
    fn signature(&self) -> Signature;
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Reply, Error>>;
}

pub(crate) struct Erased<H, T> {
    handler: H,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<H, T> Erased<H, T> {
    pub(crate) fn new(handler: H) -> Self {
        Self { handler, _marker: std::marker::PhantomData }
    }
}

impl<H: Handler<T>, T: 'static> ErasedHandler for Erased<H, T> {
    fn kind(&self) -> HandlerKind {
        H::KIND
    }

    fn signature(&self) -> Signature {
        H::signature()
    }

    fn call(&self, req: Request) -> BoxFuture<'static, Result<Reply, Error>> {
        // A panic in a handler fails that request only (Go recovers too); the message is
        // the panic's own text, as Go sends it.
        let fut = AssertUnwindSafe(self.handler.call(req)).catch_unwind();
        Box::pin(async move {
            match fut.await {
                Ok(result) => result,
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "handler panicked".to_owned());
                    tracing::error!(panic = %msg, "handler panicked");
                    Err(Error::unknown(msg))
                }
            }
        })
    }
}
