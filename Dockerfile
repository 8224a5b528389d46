# Build: docker build -t myapp:latest .
# The image runs as distroless's nonroot user (65532), which deploy/k8s expects.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# "cc" rather than "static": a Rust binary built on glibc still needs libc and libgcc_s.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/myapp /myapp
# 8080: the API. 8081: /metrics, /healthz, /readyz when run with --metrics-listen=0.0.0.0:8081.
EXPOSE 8080 8081
USER nonroot
ENTRYPOINT ["/myapp"]
