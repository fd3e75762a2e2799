# syntax=docker/dockerfile:1

# One image for both processes: the control plane (default command) and the
# worker agent (`node --import tsx agent/main.ts`). There is no build step:
# tsx compiles TypeScript at start, so the image ships lib/, src/, agent/ and gen/.
#
# Both stages use the same base so native addons compiled in `deps` (argon2)
# match the runtime's Node ABI and glibc.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
# Toolchain for node-gyp, used when a native addon has no prebuilt binary.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; tsx is one of them, because it runs the code.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Code and dependencies stay owned by root so the running process cannot rewrite them.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY gen ./gen
COPY lib ./lib
COPY src ./src
COPY agent ./agent
# DATA_DIR (./data) is the only place the process writes: embedded PGlite when
# DATABASE_URL is unset. tsx keeps its compile cache in /tmp.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8080 50051
# Liveness only: /healthz answers while the process serves HTTP. The agent has
# no HTTP port, so deployments running the agent disable this check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 and handles SIGTERM itself (graceful shutdown in src/main.ts).
CMD ["node", "--import", "tsx", "src/main.ts"]
