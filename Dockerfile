# cdc-views: the service image docker-compose.yml builds. TypeScript runs through tsx (a runtime dependency),
# so there is no build step: install production dependencies, copy the source, start.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000

# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY . .

USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=12 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"

CMD ["npx", "cdc-views", "start", "--config", "examples/shop/views.kafka.config.ts"]
