# The manager image with a container engine (make docker-build). `make image`
# builds the image releases publish, from Go alone (hack/image); this one is
# equivalent: the same static binary (CGO off, -trimpath, the version
# stamped), the same numeric user and entrypoint. distroless adds CA roots
# and /etc/passwd, which the binary does not need (its roots are compiled in).

# Build the manager binary.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X github.com/keyops-io/exchange-key-operator/internal/operator.Version=${VERSION}" \
    -o manager ./cmd

# A static binary on distroless, as the non-root user config/manager expects.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
