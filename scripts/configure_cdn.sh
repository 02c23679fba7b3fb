#!/usr/bin/env bash
# Provisions the CloudFront distribution that serves the platform's static assets.
#
#   /*      -> the S3 bucket (signed by an origin access control), cached one hour by default
#   /api/*  -> the origin domain over HTTPS, cached only as long as its Cache-Control says
#
# Viewers on HTTP are redirected to HTTPS. Prints the distribution ID, and only that, on stdout;
# progress goes to stderr. Credentials, profile, region and endpoint come from the standard AWS
# environment (AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...).
set -euo pipefail

readonly program=${0##*/}
readonly default_ttl_seconds=3600
readonly max_ttl_seconds=86400

usage() {
  cat >&2 <<EOF
usage: $program <bucket> <origin-domain>

Creates a CloudFront distribution with two origins: the S3 bucket <bucket> for static assets
(default TTL ${default_ttl_seconds}s) and the HTTPS host <origin-domain> for /api/*. Prints the
distribution ID on stdout. Uses the AWS CLI with the standard AWS environment.
EOF
}

usage_error() {
  echo "$program: $1" >&2
  usage
  exit 2
}

if [[ $# -eq 1 && ($1 == -h || $1 == --help) ]]; then
  usage
  exit 0
fi
if [[ $# -ne 2 ]]; then
  usage_error "expected 2 arguments, got $#"
fi

bucket=$1
origin_domain=$2

# S3 bucket naming rules; they also keep the JSON below free of characters needing escapes.
if [[ ! $bucket =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
  usage_error "'$bucket' is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"
fi
if [[ ! $origin_domain =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$ ]]; then
  usage_error "'$origin_domain' is not a host name (give it without scheme, port or path)"
fi

if ! command -v aws >/dev/null 2>&1; then
  echo "$program: the AWS CLI ('aws') is not on PATH; install it (pip install awscli)" >&2
  exit 127
fi

# AWS CLI v1 reads only AWS_DEFAULT_REGION; v2 prefers AWS_REGION. Honour AWS_REGION in both.
if [[ -n ${AWS_REGION:-} ]]; then
  export AWS_DEFAULT_REGION=$AWS_REGION
fi
export AWS_PAGER=""

s3_origin_id="s3-$bucket"
s3_domain="$bucket.s3.amazonaws.com"
app_origin_id="https-$origin_domain"
caller_reference="perf-platform-cdn-$(date -u +%Y%m%dT%H%M%SZ)-$$-$RANDOM$RANDOM"

# One origin access control per bucket, found again by name on later runs.
oac_name="s3-$bucket"
oac_name=${oac_name:0:64}
echo "$program: looking up origin access control $oac_name" >&2
oac_id=$(aws cloudfront list-origin-access-controls --output text \
  --query "OriginAccessControlList.Items[?Name=='$oac_name'].Id | [0]")
if [[ -z $oac_id || $oac_id == None ]]; then
  echo "$program: creating origin access control $oac_name" >&2
  oac_id=$(aws cloudfront create-origin-access-control --output text \
    --query OriginAccessControl.Id \
    --origin-access-control-config \
    "Name=$oac_name,SigningProtocol=sigv4,SigningBehavior=always,OriginAccessControlOriginType=s3")
fi

distribution_config=$(
  cat <<EOF
{
  "CallerReference": "$caller_reference",
  "Comment": "perf-platform static assets: s3://$bucket and https://$origin_domain",
  "Enabled": true,
  "PriceClass": "PriceClass_100",
  "HttpVersion": "http2and3",
  "IsIPV6Enabled": true,
  "ViewerCertificate": {"CloudFrontDefaultCertificate": true},
  "Origins": {
    "Quantity": 2,
    "Items": [
      {
        "Id": "$s3_origin_id",
        "DomainName": "$s3_domain",
        "OriginAccessControlId": "$oac_id",
        "S3OriginConfig": {"OriginAccessIdentity": ""}
      },
      {
        "Id": "$app_origin_id",
        "DomainName": "$origin_domain",
        "CustomOriginConfig": {
          "HTTPPort": 80,
          "HTTPSPort": 443,
          "OriginProtocolPolicy": "https-only",
          "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]}
        }
      }
    ]
  },
  "DefaultCacheBehavior": {
    "TargetOriginId": "$s3_origin_id",
    "ViewerProtocolPolicy": "redirect-to-https",
    "AllowedMethods": {
      "Quantity": 2,
      "Items": ["GET", "HEAD"],
      "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}
    },
    "Compress": true,
    "ForwardedValues": {"QueryString": false, "Cookies": {"Forward": "none"}},
    "MinTTL": 0,
    "DefaultTTL": $default_ttl_seconds,
    "MaxTTL": $max_ttl_seconds
  },
  "CacheBehaviors": {
    "Quantity": 1,
    "Items": [
      {
        "PathPattern": "/api/*",
        "TargetOriginId": "$app_origin_id",
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": {
          "Quantity": 7,
          "Items": ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
          "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]}
        },
        "Compress": true,
        "ForwardedValues": {
          "QueryString": true,
          "Cookies": {"Forward": "none"},
          "Headers": {"Quantity": 1, "Items": ["Authorization"]}
        },
        "MinTTL": 0,
        "DefaultTTL": 0,
        "MaxTTL": $max_ttl_seconds
      }
    ]
  }
}
EOF
)

echo "$program: creating distribution (caller reference $caller_reference)" >&2
created=$(aws cloudfront create-distribution --output text \
  --query '[Distribution.Id, Distribution.DomainName, Distribution.Status]' \
  --distribution-config "$distribution_config")
read -r distribution_id distribution_domain distribution_status <<<"$created"

if [[ ! $distribution_id =~ ^[A-Z0-9]+$ ]]; then
  echo "$program: the AWS CLI answered without a distribution ID: '$created'" >&2
  exit 1
fi

echo "$program: distribution $distribution_id at $distribution_domain is $distribution_status" >&2
echo "$program: allow it to read the bucket: s3:GetObject for service principal" \
  "cloudfront.amazonaws.com on arn:aws:s3:::$bucket/*, with condition AWS:SourceArn equal" \
  "to the distribution's ARN (README, 'CDN scripts')" >&2
echo "$distribution_id"
