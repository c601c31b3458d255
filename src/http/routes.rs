//! Route registration that writes down what it registers: the same calls build the server's
//! routes and the route list (`http::route_list`, snapshotted by the tests), so the list
//! cannot drift from what is served.

use std::borrow::Cow;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::{guard, web, FromRequest, Handler, HttpRequest, Responder};

/// The pattern of the route a request matched, kept on its resource: actix's
/// `HttpRequest::match_pattern` finds it again by matching the path against every route
/// (a tenth of the CPU of an agent poll), and the metrics and the access log both need it.
#[derive(Clone)]
struct RoutePattern(String);

/// The pattern of the route `req` matched (`/files/{file_id}/download`), if any.
pub fn matched_pattern(req: &HttpRequest) -> Option<Cow<'_, str>> {
    match req.app_data::<RoutePattern>() {
        Some(p) => Some(Cow::Borrowed(p.0.as_str())),
        // Services that route by themselves (the docs pages).
        None => req.match_pattern().map(Cow::Owned),
    }
}

pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    list: Vec<String>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Routes {
            cfg,
            list: Vec::new(),
        }
    }

    /// One method on one path, on a resource guarded by that method: other methods fall
    /// through to the next routes (and in the end to the JSON 404), as `cfg.route` does.
    pub fn route<F, Args>(&mut self, method: Method, path: &str, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.list.push(format!("{method} {path}"));
        // The method guard is on the resource, as `cfg.route` puts it.
        self.cfg.service(
            web::resource(path)
                .guard(guard::Method(method))
                .app_data(RoutePattern(path.to_string()))
                .route(web::route().to(handler)),
        );
    }

    /// One resource: add its methods, then it is registered when the builder is dropped.
    /// Methods it does not list answer 405 (or what `otherwise` says).
    pub fn at(&mut self, path: impl Into<String>) -> Resource<'_, 'a> {
        self.at_paths(vec![path.into()])
    }

    /// One resource answering on several paths (a call with and without a trailing slash).
    /// Each path is registered as a resource of its own: actix matches a resource of several
    /// paths with a regular expression set, a resource of one plain path by comparing text.
    pub fn at_paths(&mut self, paths: Vec<String>) -> Resource<'_, 'a> {
        let label = RoutePattern(paths[0].clone());
        Resource {
            resources: paths
                .iter()
                .map(|p| web::resource(p.as_str()).app_data(label.clone()))
                .collect(),
            paths,
            methods: Vec::new(),
            fallback: None,
            routes: self,
        }
    }

    /// A service that routes by itself (the docs pages); `label` describes it in the list.
    pub fn service(&mut self, label: &str, factory: impl HttpServiceFactory + 'static) {
        self.list.push(label.to_string());
        self.cfg.service(factory);
    }

    pub fn into_list(self) -> Vec<String> {
        self.list
    }
}

pub struct Resource<'r, 'a> {
    routes: &'r mut Routes<'a>,
    paths: Vec<String>,
    resources: Vec<actix_web::Resource>,
    methods: Vec<&'static str>,
    fallback: Option<&'static str>,
}

impl Resource<'_, '_> {
    fn route<F, Args>(
        mut self,
        method: &'static str,
        route: fn() -> actix_web::Route,
        handler: F,
    ) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.methods.push(method);
        self.resources = std::mem::take(&mut self.resources)
            .into_iter()
            .map(|r| r.route(route().to(handler.clone())))
            .collect();
        self
    }

    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("GET", web::get, handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("POST", web::post, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.route("DELETE", web::delete, handler)
    }

    /// What every other method on these paths gets; `label` says what that is in the list.
    pub fn otherwise<F, Args>(mut self, label: &'static str, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.fallback = Some(label);
        self.resources = std::mem::take(&mut self.resources)
            .into_iter()
            .map(|r| r.default_service(web::to(handler.clone())))
            .collect();
        self
    }
}

impl Drop for Resource<'_, '_> {
    fn drop(&mut self) {
        let methods = self.methods.join(", ");
        for path in &self.paths {
            let mut line = format!("{methods} {path}");
            if let Some(fallback) = self.fallback {
                line.push_str(&format!(" (else {fallback})"));
            }
            self.routes.list.push(line);
        }
        for resource in std::mem::take(&mut self.resources) {
            self.routes.cfg.service(resource);
        }
    }
}
