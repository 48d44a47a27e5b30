#!/usr/bin/env bash
# Deploys the Sluice CDK app (infra/) into LocalStack with cdklocal (npm package aws-cdk-local).
#   npm run deploy:local [-- extra cdk deploy arguments, e.g. -c sluice:queuePrefix=dev]
# Needs LocalStack running (docker compose -f localstack/docker-compose.yml up -d). cdklocal is
# fetched by npx on first use unless installed (npm i -D aws-cdk-local); it drives the project's
# own aws-cdk CLI version.
set -euo pipefail
cd "$(dirname "$0")/.."

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
export AWS_ENDPOINT_URL_S3="${AWS_ENDPOINT_URL_S3:-$AWS_ENDPOINT_URL}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export CDK_DEFAULT_ACCOUNT="${CDK_DEFAULT_ACCOUNT:-000000000000}"
export CDK_DEFAULT_REGION="$AWS_REGION"

if ! curl -sf --max-time 5 "$AWS_ENDPOINT_URL/_localstack/health" >/dev/null; then
  echo "deploy-local: LocalStack does not answer at $AWS_ENDPOINT_URL." >&2
  echo "  Start it with: docker compose -f localstack/docker-compose.yml up -d" >&2
  exit 1
fi

CDK_VERSION="$(node -p "require('./node_modules/aws-cdk/package.json').version" 2>/dev/null || echo 2)"
if [ -x node_modules/.bin/cdklocal ]; then
  CDKLOCAL=(node_modules/.bin/cdklocal)
else
  CDKLOCAL=(npx --yes --package "aws-cdk-local@^3" --package "aws-cdk@$CDK_VERSION" cdklocal)
fi

mkdir -p .sluice
STACK="$(node -e "const c=require('./cdk.json').context||{};process.stdout.write(String(c['sluice:stackName']||'SluiceStack'))")"
echo "deploy-local: bootstrapping aws://$CDK_DEFAULT_ACCOUNT/$AWS_REGION at $AWS_ENDPOINT_URL"
"${CDKLOCAL[@]}" bootstrap "aws://$CDK_DEFAULT_ACCOUNT/$AWS_REGION"
echo "deploy-local: deploying $STACK"
"${CDKLOCAL[@]}" deploy "$STACK" --require-approval never -c sluice:destroyData=true \
  --outputs-file .sluice/localstack-outputs.json "$@"
echo "deploy-local: outputs in .sluice/localstack-outputs.json"
node -e "
const o = require('./.sluice/localstack-outputs.json')['$STACK'] || {};
if (o.ApiUrl) console.log('  API (LocalStack): ' + o.ApiUrl);
for (const k of ['TableName', 'BucketName', 'QueuePrefix']) if (o[k]) console.log('  ' + k + ': ' + o[k]);
"
