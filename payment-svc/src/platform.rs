//! The external data platform: the one system outside the mesh, reached over HTTP. An order
//! is sent once it is paid (TRANSMIT_DATA); the platform has no way to take one back.

use std::time::Duration;

use kit::ErrorCode;
use serde_json::json;

use crate::domain::{Failure, Order};
use crate::saga::StepError;

#[derive(Clone)]
pub struct DataPlatform {
    http: reqwest::Client,
    orders_url: String,
}

impl DataPlatform {
    /// `attempt_timeout` bounds one POST; the saga retries a few of them within its budget.
    pub fn new(base_url: &str, attempt_timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .connect_timeout(attempt_timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self { http, orders_url: format!("{}/orders", base_url.trim_end_matches('/')) })
    }

    /// One attempt. 5xx, 429 and transport errors may pass (transient); another 4xx is a
    /// refusal. The order id travels as the Idempotency-Key, so a platform that got a
    /// retried order can tell it is the same one.
    pub async fn send(&self, order: &Order) -> Result<(), StepError> {
        let body = json!({
            "orderId": order.id,
            "userId": order.user_id,
            "items": order.lines.iter().map(|l| json!({
                "productId": l.product_id, "quantity": l.quantity, "unitPrice": l.unit_price, "amount": l.amount(),
            })).collect::<Vec<_>>(),
            "totalAmount": order.total_amount,
            "discountAmount": order.discount_amount,
            "paidAmount": order.paid_amount,
            "userCouponId": order.user_coupon_id,
        });
        let sent = self.http.post(&self.orders_url).header("Idempotency-Key", &order.id).json(&body).send().await;
        let transient = |detail: String| StepError::Transient { code: ErrorCode::ExternalServiceFailed, detail };
        match sent {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) if response.status().is_server_error() || response.status().as_u16() == 429 => {
                Err(transient(format!("data platform answered {}", response.status().as_u16())))
            }
            Ok(response) => Err(StepError::Rejected(Failure {
                code: ErrorCode::ExternalServiceFailed.as_str().to_owned(),
                product_id: None,
                detail: format!("data platform refused the order ({})", response.status().as_u16()),
            })),
            Err(err) if err.is_timeout() => Err(transient("data platform did not answer in time".to_owned())),
            Err(_) => Err(transient("data platform unreachable".to_owned())),
        }
    }
}
