# node-registry-credentials: the node agent's and the broker's image (one image, every command).
#
# Built from the checked-out tree AFTER `npm ci`: the build stage bundles src/ with esbuild from
# the context's node_modules (`npm run build`), so `docker build` needs no network. The base image
# is the official one; on machines that cannot pull it, scripts/e2e/build-node-base-image.sh
# provides a local stand-in under the same name.
#
#   npm ci && docker build -t node-registry-credentials .
#
# The final image has no shell and no package manager: the Node binary with the shared libraries
# it links, a CA bundle, and the bundle (no node_modules). Every node of a fleet pulls it before its
# first private pull can work, so each MiB counts (docs/benchmarks.md).

FROM node:24-bookworm-slim AS build
LABEL org.opencontainers.image.title="node-registry-credentials-build"
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY node_modules ./node_modules
COPY scripts/build.ts ./scripts/build.ts
COPY src ./src
RUN npm run build
# The runtime, taken from this very base image: node, the libraries `ldd` lists (at the same paths,
# where the loader looks for them), and Node's own root certificates as the system CA bundle (the
# slim image has no ca-certificates package; NODE_USE_SYSTEM_CA and other tools read this file).
RUN set -eu; \
    mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/app; \
    chmod 1777 /rootfs/tmp; \
    cp /usr/local/bin/node /rootfs/usr/local/bin/node; \
    for lib in $(ldd /usr/local/bin/node | grep -o '/[^ ]*'); do \
      mkdir -p "/rootfs$(dirname "$lib")"; cp -L "$lib" "/rootfs$lib"; \
    done; \
    node -p "require('node:tls').rootCertificates.join('\n')" >/rootfs/etc/ssl/certs/ca-certificates.crt; \
    cp -a /src/dist /rootfs/app/dist

FROM scratch
LABEL org.opencontainers.image.title="node-registry-credentials"
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin \
    NODE_ENV=production
WORKDIR /app
# The DaemonSet runs it as uid 0 with a read-only root filesystem and only CHOWN, DAC_OVERRIDE
# and FOWNER: it writes root-owned files under the host root mounted at /host.
USER 0:0
# --no-node-snapshot: Node builds its start-up state instead of deserializing the whole snapshot,
# 3 MiB less at rest for 0.1-0.2 s more at start. --optimize-for-size: V8 keeps a smaller heap,
# 1.4-1.8 MiB less at rest (docs/benchmarks.md; the bench reads these flags).
ENTRYPOINT ["node", "--no-node-snapshot", "--optimize-for-size", "/app/dist/cli.js"]
CMD ["run", "--host-root", "/host"]
