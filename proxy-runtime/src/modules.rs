//! Downstream modules: reusable filters that sit between the phases and the client.
//!
//! A module (compression, header policies, ...) sees the request head once it is read
//! and every response head and body piece on its way to the client, including local
//! responses that phases write themselves. Modules are registered once per service in
//! [`ProxyHttp::init_downstream_modules`](crate::ProxyHttp::init_downstream_modules);
//! each request gets fresh module state from its [`HttpModuleBuilder`]. With no
//! modules registered, a request pays nothing for them.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::http::{RequestHeader, ResponseHeader};

/// Per-request state of one module.
pub trait HttpModule: Send + Sync {
    /// Called once the request head is read, before `request_filter`.
    fn request_header_filter(&mut self, _req: &mut RequestHeader) -> Result<()> {
        Ok(())
    }
    /// Called on every response head before it is sent to the client.
    fn response_header_filter(
        &mut self,
        _resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }
    /// Called on every response body piece before it is sent to the client.
    fn response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// Makes a module's per-request state.
pub trait HttpModuleBuilder: Send + Sync {
    /// Fresh state for one request.
    fn init(&self) -> Box<dyn HttpModule>;
}

/// The modules registered on a service, in order.
#[derive(Clone, Default)]
pub struct HttpModules {
    builders: Vec<Arc<dyn HttpModuleBuilder>>,
}

impl fmt::Debug for HttpModules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpModules({})", self.builders.len())
    }
}

impl HttpModules {
    /// Register a module; modules run in registration order.
    pub fn add_module(&mut self, builder: Arc<dyn HttpModuleBuilder>) {
        self.builders.push(builder);
    }

    /// The state for one request.
    pub(crate) fn build_ctx(&self) -> ModuleCtx {
        ModuleCtx {
            modules: self.builders.iter().map(|b| b.init()).collect(),
        }
    }
}

/// The modules' state for one request.
#[derive(Default)]
pub struct ModuleCtx {
    modules: Vec<Box<dyn HttpModule>>,
}

impl fmt::Debug for ModuleCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleCtx({})", self.modules.len())
    }
}

impl ModuleCtx {
    /// Whether no module runs on this request.
    pub(crate) fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    pub(crate) fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        self.modules
            .iter_mut()
            .try_for_each(|m| m.request_header_filter(req))
    }

    pub(crate) fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end: bool,
    ) -> Result<()> {
        self.modules
            .iter_mut()
            .try_for_each(|m| m.response_header_filter(resp, end))
    }

    pub(crate) fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end: bool,
    ) -> Result<()> {
        self.modules
            .iter_mut()
            .try_for_each(|m| m.response_body_filter(body, end))
    }
}
