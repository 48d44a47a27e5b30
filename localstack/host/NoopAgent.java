/**
 * Stands in for LocalStack's ddb-local-loader agent (a download; it only lifts DynamoDB Local's
 * limit of 20 global secondary indexes per table, which Sluice does not reach). LocalStack always
 * starts DynamoDB Local with -javaagent:.../ddb-local-loader-0.1.jar, so the jar must exist.
 */
public final class NoopAgent {
  private NoopAgent() {}

  public static void premain(String args, java.lang.instrument.Instrumentation instrumentation) {}
}
