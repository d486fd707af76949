//! Remotes (Go's `RegisterRemote`): methods other servers call by User RPC, with
//! protobuf arguments and replies (spec §12.3).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_core::{BoxFuture, Context, Error};

use crate::AppState;
use crate::docs::Signature;

/// What a remote method receives besides its argument: the caller's propagated context
/// (pass it on to nested RPCs) and the application state.
#[derive(Clone, Debug, Default)]
pub struct RemoteRequest {
    /// The propagated context of the incoming RPC.
    pub ctx: Context,
    /// Application state, as handlers see it through [`State`](crate::State).
    pub state: AppState,
}

impl RemoteRequest {
    /// A value of type `T` from the application state.
    pub fn state<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.state.get::<T>()
    }
}

trait ErasedRemote: Send + Sync + 'static {
    fn signature(&self) -> Signature;
    fn call(&self, req: RemoteRequest, data: Bytes) -> BoxFuture<'static, Result<Bytes, Error>>;
}

struct WithArg<F, A>(F, std::marker::PhantomData<fn(A)>);
struct NoArg<F>(F);
struct Raw<F>(F);

impl<F, A, R, Fut> ErasedRemote for WithArg<F, A>
where
    F: Fn(RemoteRequest, A) -> Fut + Send + Sync + 'static,
    A: prost::Message + Default + 'static,
    R: prost::Message + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    fn signature(&self) -> Signature {
        Signature::of::<crate::Proto<A>, crate::Proto<R>>(crate::HandlerKind::Request)
    }

    fn call(&self, req: RemoteRequest, data: Bytes) -> BoxFuture<'static, Result<Bytes, Error>> {
        match A::decode(data) {
            Ok(arg) => {
                let fut = (self.0)(req, arg);
                Box::pin(async move { fut.await.map(|r| Bytes::from(r.encode_to_vec())) })
            }
            Err(e) => Box::pin(std::future::ready(Err(Error::bad_request(e.to_string())))),
        }
    }
}

impl<F, R, Fut> ErasedRemote for NoArg<F>
where
    F: Fn(RemoteRequest) -> Fut + Send + Sync + 'static,
    R: prost::Message + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    fn signature(&self) -> Signature {
        Signature::without_input::<crate::Proto<R>>(crate::HandlerKind::Request)
    }

    fn call(&self, req: RemoteRequest, _: Bytes) -> BoxFuture<'static, Result<Bytes, Error>> {
        let fut = (self.0)(req);
        Box::pin(async move { fut.await.map(|r| Bytes::from(r.encode_to_vec())) })
    }
}

impl<F, Fut> ErasedRemote for Raw<F>
where
    F: Fn(RemoteRequest, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
{
    fn signature(&self) -> Signature {
        Signature::of::<Bytes, Bytes>(crate::HandlerKind::Request)
    }

    fn call(&self, req: RemoteRequest, data: Bytes) -> BoxFuture<'static, Result<Bytes, Error>> {
        Box::pin((self.0)(req, data))
    }
}

type NameFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A named set of remote methods, registered as `name.method`.
///
/// ```
/// use pitaya_handler::{RemoteComponent, RemoteRequest};
/// use pitaya_protos::test::{TestRequest, TestResponse};
///
/// let svc = RemoteComponent::new("testremotesvc").remote(
///     "rpctestptrreturnsptr",
///     |_req: RemoteRequest, arg: TestRequest| async move {
///         Ok(TestResponse { code: 200, msg: format!("got {}", arg.msg) })
///     },
/// );
/// ```
pub struct RemoteComponent {
    name: String,
    methods: Vec<(String, Arc<dyn ErasedRemote>)>,
    name_fn: Option<NameFn>,
}

impl RemoteComponent {
    /// A component named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), methods: Vec::new(), name_fn: None }
    }

    /// Applies `f` to method names registered from now on (Go's `WithNameFunc`).
    pub fn name_fn(mut self, f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.name_fn = Some(Arc::new(f));
        self
    }

    /// Registers a method taking a protobuf argument. An argument that does not decode
    /// is answered `PIT-400` without calling `f`.
    pub fn remote<F, A, R, Fut>(self, method: &str, f: F) -> Self
    where
        F: Fn(RemoteRequest, A) -> Fut + Send + Sync + 'static,
        A: prost::Message + Default + 'static,
        R: prost::Message + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        self.add(method, Arc::new(WithArg(f, std::marker::PhantomData)))
    }

    /// Registers a method without argument (the caller sends no data).
    pub fn remote_no_args<F, R, Fut>(self, method: &str, f: F) -> Self
    where
        F: Fn(RemoteRequest) -> Fut + Send + Sync + 'static,
        R: prost::Message + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        self.add(method, Arc::new(NoArg(f)))
    }

    /// Registers a method that gets the argument's bytes as sent and whose reply bytes
    /// are sent as they are: for callers that are not Rust (the FFI crate), whose
    /// messages prost does not know. Peers still expect protobuf on both sides.
    pub fn remote_raw<F, Fut>(self, method: &str, f: F) -> Self
    where
        F: Fn(RemoteRequest, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        self.add(method, Arc::new(Raw(f)))
    }

    fn add(mut self, method: &str, remote: Arc<dyn ErasedRemote>) -> Self {
        let name = self.name_fn.as_ref().map_or_else(|| method.to_owned(), |f| f(method));
        self.methods.push((name, remote));
        self
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each method with its signature (argument and reply as `Proto<T>`), in
    /// registration order; see [`docs`](crate::docs).
    pub fn signatures(&self) -> Vec<(String, Signature)> {
        self.methods.iter().map(|(m, r)| (m.clone(), r.signature())).collect()
    }
}

impl std::fmt::Debug for RemoteComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("RemoteComponent")
            .field("name", &self.name)
            .field("methods", &methods)
            .finish()
    }
}

/// Message of the error for a remote that is not registered (spec §6.6).
pub const ROUTE_NOT_FOUND: &str = "route not found";

/// Remote methods by `service.method`. Cheap to clone.
#[derive(Clone, Default)]
pub struct Remotes(Arc<HashMap<String, Arc<dyn ErasedRemote>>>);

impl Remotes {
    /// A table of `components`.
    ///
    /// # Errors
    /// `PIT-000` for a component name registered twice, a component without methods,
    /// or a method registered twice (as Go refuses them).
    pub fn new(components: impl IntoIterator<Item = RemoteComponent>) -> Result<Self, Error> {
        let mut map = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for c in components {
            if !names.insert(c.name.clone()) {
                return Err(Error::unknown(format!("remote: service already defined: {}", c.name)));
            }
            if c.methods.is_empty() {
                return Err(Error::unknown(format!("remote: service {} has no methods", c.name)));
            }
            for (method, remote) in c.methods {
                let key = format!("{}.{method}", c.name);
                if map.insert(key.clone(), remote).is_some() {
                    return Err(Error::unknown(format!("remote: method registered twice: {key}")));
                }
            }
        }
        Ok(Self(Arc::new(map)))
    }

    /// Whether `short` (`service.method`) is registered.
    pub fn contains(&self, short: &str) -> bool {
        self.0.contains_key(short)
    }

    /// Every registered `service.method`, sorted.
    pub fn routes(&self) -> Vec<String> {
        let mut r: Vec<String> = self.0.keys().cloned().collect();
        r.sort();
        r
    }

    /// Calls the remote `short` with the protobuf bytes `data`; the reply is the
    /// protobuf of its return value.
    ///
    /// # Errors
    /// `PIT-404` `route not found` (metadata `route`) for an unknown remote; `PIT-400`
    /// for an argument that does not decode; the remote's own error.
    pub fn call(
        &self,
        short: &str,
        req: RemoteRequest,
        data: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, Error>> {
        match self.0.get(short) {
            Some(remote) => remote.call(req, data),
            None => Box::pin(std::future::ready(Err(
                Error::not_found(ROUTE_NOT_FOUND).with_metadata("route", short)
            ))),
        }
    }
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes").field("routes", &self.routes()).finish()
    }
}

#[cfg(test)]
mod tests {
    use pitaya_protos::test::{TestRequest, TestResponse};
    use prost::Message;

    use super::*;

    fn remotes() -> Remotes {
        let c = RemoteComponent::new("svc")
            .name_fn(str::to_lowercase)
            .remote("Echo", |_r: RemoteRequest, a: TestRequest| async move {
                Ok(TestResponse { code: 200, msg: format!("got {}", a.msg) })
            })
            .remote_no_args("None", |_r| async {
                Ok(TestResponse { code: 200, msg: "got nothing".into() })
            })
            .remote_raw("Raw", |_r, data: Bytes| async move {
                Ok(Bytes::from([&b"raw "[..], &data].concat()))
            })
            .remote("Fail", |_r, _a: TestRequest| async {
                Err::<TestResponse, _>(
                    Error::new("PIT-433", "test error").with_metadata("some", "meta"),
                )
            });
        Remotes::new([c]).unwrap()
    }

    #[tokio::test]
    async fn calls_decode_and_encode_protobuf() {
        let r = remotes();
        let arg = TestRequest { msg: "x".into() }.encode_to_vec();
        let out = r.call("svc.echo", RemoteRequest::default(), arg.into()).await.unwrap();
        assert_eq!(&out[..], b"\x08\xc8\x01\x12\x05got x");
        let out = r.call("svc.none", RemoteRequest::default(), Bytes::new()).await.unwrap();
        assert_eq!(TestResponse::decode(out).unwrap().msg, "got nothing");
        let out = r.call("svc.raw", RemoteRequest::default(), Bytes::from_static(b"\xff")).await;
        assert_eq!(&out.unwrap()[..], b"raw \xff");
    }

    #[tokio::test]
    async fn errors_keep_code_and_metadata() {
        let r = remotes();
        let e = r.call("svc.fail", RemoteRequest::default(), Bytes::new()).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message(), e.metadata()["some"].as_str()),
            ("PIT-433", "test error", "meta")
        );
        let e = r.call("svc.missing", RemoteRequest::default(), Bytes::new()).await.unwrap_err();
        assert_eq!(
            (e.code(), e.message(), e.metadata()["route"].as_str()),
            ("PIT-404", "route not found", "svc.missing")
        );
        let e = r
            .call("svc.echo", RemoteRequest::default(), Bytes::from_static(b"\xff\xff"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "PIT-400");
    }

    #[test]
    fn duplicate_and_empty_components_are_refused() {
        assert!(Remotes::new([RemoteComponent::new("a")]).is_err());
        let mk = || {
            RemoteComponent::new("a")
                .remote_no_args("m", |_r| async { Ok(TestResponse::default()) })
        };
        assert!(Remotes::new([mk(), mk()]).is_err());
    }
}
