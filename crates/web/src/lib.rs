//! Sirr's client core in the browser: the platform seams of `sirr-client` implemented over the
//! web platform, and (later) the `SirrCore` API of `web/src/core.ts` exported to JavaScript.
//!
//! - [`IdbStore`]: the local store over IndexedDB, encrypted at rest under a key that script
//!   can use but never read (see `idb`);
//! - [`browser_platform`]: `Date.now`/`setTimeout`, `spawn_local`, and the browser's
//!   `WebSocket` as sirr-client's `Clock`, `Spawner` and `Connector`.
//!
//! - [`WasmCore`] (`openCore` in JavaScript): the `SirrCore` of `web/src/core.ts` over
//!   sirr-client, which the TypeScript adapter (`web/src/wasmCore.ts`) wraps; [`view`] turns
//!   the client's records into the shapes the UI reads.
//!
//! Everything is compiled only for `wasm32`; natively this crate is empty, so the workspace's
//! native checks stay free of JS bindings.

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(all(target_arch = "wasm32", feature = "contract"))]
mod contract;
#[cfg(target_arch = "wasm32")]
mod idb;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod platform;
#[cfg(any(target_arch = "wasm32", test))]
pub mod view;

#[cfg(target_arch = "wasm32")]
pub use api::{WasmCore, open_core};
#[cfg(target_arch = "wasm32")]
pub use idb::IdbStore;
#[cfg(target_arch = "wasm32")]
pub use platform::{BrowserClock, BrowserConnector, BrowserSpawner, browser_platform};
