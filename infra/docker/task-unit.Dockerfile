# The task unit as a container, for Fargate. Same entrypoint as the Lambda function and the local
# child processes (functions/task-unit.ts); it reads SLUICE_JOB_ID, SLUICE_UNIT_ID and
# SLUICE_ATTEMPT from the environment (the launcher sets them per task).
#
# Build context: the repository root.
#   docker build -f infra/docker/task-unit.Dockerfile -t sluice-task-unit .
# `cdk deploy -c sluice:fargate=true` builds it the same way (needs Docker at deploy time), or
# pass a pushed image with `-c sluice:taskImage=<uri>` to deploy without Docker.

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY lib ./lib
COPY functions ./functions
COPY examples ./examples
# The jobs: the examples (lib/api/jobs-module.ts imports them unless a jobs module is bundled in
# place of sluice-bundled-jobs). For your own jobs, add to this command
#   --define:SLUICE_BUNDLED_JOBS=true --alias:sluice-bundled-jobs=./<your jobs module>
# (with the module copied into the build), and pass the pushed image as fargate.image.
RUN npx esbuild functions/task-unit.ts --bundle --platform=node --target=node22 --format=esm \
      --main-fields=module,main --outfile=/out/task-unit.mjs --external:sluice-bundled-jobs \
      --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /out/task-unit.mjs ./task-unit.mjs
USER node
CMD ["node", "/app/task-unit.mjs"]
