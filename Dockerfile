# node-registry-credentials: the per-node agent image (runs as the DaemonSet's container).
#
# Built from the checked-out tree AFTER `npm ci`: the build stage compiles dist/ with the
# context's node_modules and prunes it to production dependencies, so `docker build` needs no
# network. The base image is the official one; on machines that cannot pull it,
# scripts/e2e/build-node-base-image.sh provides a local stand-in under the same name.
#
#   npm ci && docker build -t node-registry-credentials .

FROM node:24-bookworm-slim AS build
LABEL org.opencontainers.image.title="node-registry-credentials-build"
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY node_modules ./node_modules
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund \
 && rm -rf node_modules/.cache

FROM node:24-bookworm-slim
LABEL org.opencontainers.image.title="node-registry-credentials"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The DaemonSet runs it as uid 0 with a read-only root filesystem and only CHOWN, DAC_OVERRIDE
# and FOWNER: it writes root-owned files under the host root mounted at /host.
USER 0:0
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["run", "--host-root", "/host"]
