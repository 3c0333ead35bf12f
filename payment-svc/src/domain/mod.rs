//! Orders, their lines and statuses, the saga's steps, and the errors of payment-svc.
//! No tonic, no SQL: values here are valid by construction.

mod error;
mod order;
mod saga;

pub use error::PaymentError;
pub use order::{
    ListLimit, Order, OrderId, OrderLine, OrderStatus, PlaceOrder, ProductId, Quantity, RequestedLine, UserCouponId,
    UserId,
};
pub use saga::{Failure, Phase, StepName, StepState, StepStatus};
