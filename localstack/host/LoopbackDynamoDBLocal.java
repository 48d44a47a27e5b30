import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;

/**
 * Main class of the DynamoDBLocal.jar that LocalStack runs in host mode (see install-dynamodb-local in
 * localstack/host.sh). DynamoDB Local has no option for its listen address: its ServerRunner builds a
 * Jetty {@code Server(port)}, which listens on every interface. This launcher builds the same server
 * from the same command line (LocalStack passes -port, -inMemory, ...), sets the host of its Jetty
 * connector to SLUICE_DYNAMODB_LOCAL_HOST (default 127.0.0.1), and starts it. It fails instead of
 * listening on all interfaces when the server's internals are not what it expects.
 */
public final class LoopbackDynamoDBLocal {
  private LoopbackDynamoDBLocal() {}

  public static void main(String[] args) throws Exception {
    String host = System.getenv().getOrDefault("SLUICE_DYNAMODB_LOCAL_HOST", "127.0.0.1");
    List<String> argv = new ArrayList<>(Arrays.asList(args));
    // No telemetry calls to AWS from a test emulator (LocalStack also sets DDB_LOCAL_TELEMETRY=0).
    if (!argv.contains("-disableTelemetry")) argv.add("-disableTelemetry");
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(argv.toArray(new String[0]));

    // DynamoDBProxyServer keeps its Jetty server in a private field; DynamoDB Local is pinned
    // (dynamodb-local-pom.xml), so a change here shows up as this error, not as a wildcard bind.
    Server jetty;
    try {
      Field field = DynamoDBProxyServer.class.getDeclaredField("server");
      field.setAccessible(true);
      jetty = (Server) field.get(proxy);
    } catch (ReflectiveOperationException | ClassCastException e) {
      throw new IllegalStateException("LoopbackDynamoDBLocal: DynamoDB Local's server has no Jetty field 'server' (" + e + "); update localstack/host/LoopbackDynamoDBLocal.java for this DynamoDB Local version", e);
    }
    Connector[] connectors = jetty.getConnectors();
    if (connectors.length == 0) throw new IllegalStateException("LoopbackDynamoDBLocal: DynamoDB Local's Jetty server has no connector");
    for (Connector connector : connectors) {
      if (!(connector instanceof AbstractNetworkConnector network)) {
        throw new IllegalStateException("LoopbackDynamoDBLocal: unexpected Jetty connector " + connector.getClass().getName());
      }
      network.setHost(host);
    }
    System.out.println("LoopbackDynamoDBLocal: DynamoDB Local listens on " + host);
    proxy.start();
    if (!jetty.isStarted()) {
      // DynamoDBProxyServer.start() prints a bind failure and stops the server instead of throwing.
      System.err.println("LoopbackDynamoDBLocal: DynamoDB Local did not start");
      System.exit(1);
    }
  }
}
