"""The reference project's function with boto3: the event ({"url": ...} or
{"image": base64}) goes to the endpoint as JSON; the answer wraps the
endpoint's JSON as the body. AWS_ENDPOINT_URL (set by kennel) makes boto3
call kennel's SageMaker Runtime (passed explicitly: older botocore ignores
the variable)."""
import json
import os

import boto3

runtime = boto3.client("sagemaker-runtime", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
ENDPOINT = os.environ.get("ENDPOINT_NAME", "dog-ep")


def lambda_handler(event, context):
    if not isinstance(event, dict) or not ("url" in event or "image" in event):
        raise ValueError('the event needs "url" or "image" (base64)')
    response = runtime.invoke_endpoint(EndpointName=ENDPOINT,
                                       ContentType="application/json",
                                       Accept="application/json",
                                       Body=json.dumps(event))
    result = response["Body"].read().decode("utf-8")
    print(f"dog-breed-python: {ENDPOINT} answered {len(result)} bytes", flush=True)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"},
        "body": result,
    }
