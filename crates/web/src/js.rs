//! Small helpers over the JS APIs the other modules share.
#![cfg(target_arch = "wasm32")]

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// A promise and the two functions that settle it, for bridging event callbacks (IndexedDB
/// requests and transactions) to a future without leaking closures.
pub(crate) fn deferred() -> (Promise, Function, Function) {
    let mut settle = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    // The Promise constructor runs its executor before returning.
    let (resolve, reject) = settle.unwrap_or_else(|| (Function::new_no_args(""), Function::new_no_args("")));
    (promise, resolve, reject)
}

/// A property of the global object (`window` or a worker's `self`), if it is an object.
pub(crate) fn global_property(name: &str) -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))
        .ok()
        .filter(|v| v.is_object())
}

/// The DOM exception's name (`QuotaExceededError`, ...) and message, or the value's text.
pub(crate) fn describe(e: &JsValue) -> (String, String) {
    if let Some(d) = e.dyn_ref::<web_sys::DomException>() {
        return (d.name(), d.message());
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return (String::from(err.name()), String::from(err.message()));
    }
    (String::new(), e.as_string().unwrap_or_else(|| format!("{e:?}")))
}

/// A warning on the console (no secrets: callers pass error descriptions only).
pub(crate) fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}
