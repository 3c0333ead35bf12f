//! The bare backends, measured in the same run as the mesh: our figures are reported as a
//! ratio of these, since absolute numbers drift from machine to machine and run to run.

mod checkout_tx;
mod mysql;
mod onehop;
mod redis_gate;

pub use self::checkout_tx::{SCENARIO as CHECKOUT_TX, mysql_checkout_tx};
pub(crate) use self::mysql::label;
pub use self::mysql::{HotRow, POINT_BALANCE, PRODUCT_STOCK, mysql_hot_update};
pub use self::onehop::{OneHop, SCENARIO as ONEHOP_GATE, onehop_gate};
pub use self::redis_gate::{ADMIT, GateRace, redis_gate};
