"""The reference project's function: a photo in, the endpoint's scores out.

Event: {"url": "http://..."} or {"image": "<base64 JPEG/PNG>"}. The event is
sent unchanged as the JSON body of InvokeEndpoint on ENDPOINT_NAME (default
dog-ep); the answer is the shape API Gateway expects:
{"statusCode": 200, "headers": {...}, "body": "<the endpoint's JSON>"}.

On kennel the function runs with its execution role's temporary
credentials in the environment and AWS_ENDPOINT_URL pointing at the kennel
server (passed explicitly below: older botocore ignores the variable). On
AWS the same file works unchanged (AWS_ENDPOINT_URL unset)."""
import json
import os

import boto3

ENDPOINT_NAME = os.environ.get("ENDPOINT_NAME", "dog-ep")
runtime = boto3.client("sagemaker-runtime", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))


def lambda_handler(event, context):
    if not isinstance(event, dict) or not (event.get("url") or event.get("image")):
        return {"statusCode": 400,
                "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"},
                "body": 'the event needs "url" (an image URL) or "image" (base64 JPEG/PNG)'}
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT_NAME,
                                       ContentType="application/json",
                                       Accept="application/json",
                                       Body=json.dumps(event))
    result = response["Body"].read().decode("utf-8")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"},
        "body": result,
    }
