// A warm javac for the evaluator: one JVM compiles many programs, so each compile skips the
// JVM start and javac's class loading (about half a second apiece). It only compiles: the
// caller passes -proc:none, so no code from a source file runs here; the programs themselves
// still run only in the sandbox. Protocol on stdin/stdout, one request at a time: a line of
// tab-separated javac arguments in; "<exit code> <byte count>\n" and the diagnostics out.
// Exit code 3 means the compiler itself failed (e.g. out of memory): compile elsewhere.
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

public class JavacServer {
    public static void main(String[] args) throws Exception {
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        OutputStream out = new FileOutputStream(FileDescriptor.out);
        // Nothing else may write to the protocol stream.
        System.setOut(new PrintStream(OutputStream.nullOutputStream()));
        String line;
        while ((line = in.readLine()) != null) {
            ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
            int code;
            try {
                PrintStream sink = new PrintStream(diagnostics, true, StandardCharsets.UTF_8);
                code = javac.run(null, sink, sink, line.split("\t"));
                sink.flush();
            } catch (Throwable t) {
                code = 3;
                diagnostics.reset();
                diagnostics.write(t.toString().getBytes(StandardCharsets.UTF_8));
            }
            byte[] text = diagnostics.toByteArray();
            out.write((code + " " + text.length + "\n").getBytes(StandardCharsets.UTF_8));
            out.write(text);
            out.flush();
        }
    }
}
