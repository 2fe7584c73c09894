/// MLflow accepts letters, digits and `_ - . / space` in metric and param
/// names and rejects a whole batch for one bad key. Brackets and parentheses
/// are dropped, as Ultralytics' own MLflow callback does
/// (`metrics/mAP50-95(B)` → `metrics/mAP50-95B`); anything else becomes `_`.
public enum MetricName {
    public static func sanitize(_ name: String) -> String {
        var out = ""
        for ch in name {
            switch ch {
            case "(", ")", "[", "]": continue
            case "a"..."z", "A"..."Z", "0"..."9", "_", "-", ".", "/", " ": out.append(ch)
            default: out.append("_")
            }
        }
        return out.isEmpty ? "_" : String(out.prefix(250))
    }
}
