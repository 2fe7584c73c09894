// libyaml's event parser, which Yams builds as its `CYaml` module. Only the
// event stream is read here: it costs linear time and constant memory
// whatever the document says, unlike composing a tree (Yams expands aliases
// by sharing nodes, and hashes mapping keys, so an aliased key costs the
// size of its expansion).
import CYaml

/// Limits a config's YAML must respect before it is composed into a tree:
/// no anchors or aliases (a "billion laughs" body is 400 bytes that expand to
/// gigabytes), a bounded nesting depth and a bounded number of nodes.
public enum YAMLLimits {
    public static let maxDepth = 32
    public static let maxNodes = 20_000

    /// Throws the first violation, naming the line; syntax errors are left
    /// for the composer to report.
    public static func check(_ text: String, source: String) throws(YardError) {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YardError(.internal, "\(source): the YAML parser could not start")
        }
        defer { yaml_parser_delete(&parser) }
        var violation: YardError?
        bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var depth = 0
            var nodes = 0
            while violation == nil {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                func refuse(_ what: String) {
                    violation = YardError(.invalidInput, field: source, "\(source) line \(line): \(what)")
                }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return
                case YAML_ALIAS_EVENT:
                    refuse("YAML aliases (*name) are not accepted; write the value out")
                case YAML_SCALAR_EVENT:
                    nodes += 1
                    if event.data.scalar.anchor != nil { refuse("YAML anchors (&name) are not accepted; write the value out") }
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    nodes += 1
                    depth += 1
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    if anchor != nil { refuse("YAML anchors (&name) are not accepted; write the value out") }
                    if depth > maxDepth { refuse("nested deeper than \(maxDepth) levels; a job config is a few levels deep") }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                default:
                    break
                }
                if violation == nil, nodes > maxNodes {
                    refuse("more than \(maxNodes) values; keep large data in files the config points to")
                }
            }
        }
        if let violation { throw violation }
    }
}
