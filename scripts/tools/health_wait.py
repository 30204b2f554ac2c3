"""Wait until the gRPC server at ADDR says SERVING, as a client that is already running:
gRPC is imported first and "ready" printed, then the port is polled every 10 ms and health
asked once it is open. Timing a server's start with it measures the server, not this
client's own start-up (~0.15 s of Python imports for grpc_probe.py). Exit 0 once SERVING,
1 after 120 s."""
import socket, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
host, port = addr.rsplit(":", 1)
print("ready", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        socket.create_connection((host, int(port)), timeout=0.2).close()
    except OSError:
        time.sleep(0.01)
        continue
    channel = grpc.insecure_channel(addr)
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=2)
        if answer.status == health_pb2.HealthCheckResponse.SERVING:
            sys.exit(0)
    except grpc.RpcError:
        pass
    finally:
        channel.close()
    time.sleep(0.01)
sys.exit(1)
