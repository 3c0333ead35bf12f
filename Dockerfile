# syntax=docker/dockerfile:1
# One image per binary of the workspace, chosen with SERVICE:
#   docker build --build-arg SERVICE=coupon-svc -t ghcr.io/commerce-mesh/coupon-svc:0.1.0 .
# SERVICE is one of: inventory-svc, coupon-svc, point-svc, payment-svc, gateway.

FROM rust:1.95-bookworm AS builder
ARG SERVICE
WORKDIR /app
COPY . .
# Cache mounts keep downloaded crates across builds; target/ stays in the layer so the
# runtime stage can copy the binary from it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    : "${SERVICE:?pass --build-arg SERVICE=<binary>}" \
    && cargo build --release --locked -p "$SERVICE"

# glibc and libgcc only: TLS is rustls and protos are compiled at build time, so nothing
# else is needed at run time. The :nonroot tag runs as uid 65532, as the pods expect.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG SERVICE
COPY --from=builder /app/target/release/${SERVICE} /usr/local/bin/service
ENTRYPOINT ["/usr/local/bin/service"]
