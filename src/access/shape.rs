//! The shape of the GraphQL schema as the policy sees it: object types and their fields (return
//! type, nullability, arguments) and input objects. Built from the SDL the schema prints, so the
//! access layer never depends on resolver code, and the policy can be checked against exactly
//! what clients can ask for.

use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
use std::collections::BTreeMap;

/// A field's type, reduced to what access needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldType {
    /// The named type at the bottom of lists and non-null wrappers.
    pub named: String,
    /// The field itself may be null.
    pub nullable: bool,
    /// The field is a list (at any depth).
    pub list: bool,
}

impl FieldType {
    fn of(ty: &Type) -> Self {
        let mut list = false;
        let mut base = &ty.base;
        let named = loop {
            match base {
                BaseType::Named(n) => break n.to_string(),
                BaseType::List(inner) => {
                    list = true;
                    base = &inner.base;
                }
            }
        };
        Self {
            named,
            nullable: ty.nullable,
            list,
        }
    }
}

/// One output field.
#[derive(Debug, Clone)]
pub struct FieldShape {
    /// Return type.
    pub ty: FieldType,
    /// Arguments, by name, with their types.
    pub arguments: BTreeMap<String, FieldType>,
}

/// Object types (and interfaces), input objects and enums of a schema.
#[derive(Debug, Clone, Default)]
pub struct SchemaShape {
    /// Output types: type name → field name → shape. Introspection types are left out.
    pub objects: BTreeMap<String, BTreeMap<String, FieldShape>>,
    /// Input objects: type name → field name → type.
    pub inputs: BTreeMap<String, BTreeMap<String, FieldType>>,
    /// Unions: name → member types.
    pub unions: BTreeMap<String, Vec<String>>,
}

impl SchemaShape {
    /// Parses an SDL document.
    pub fn from_sdl(sdl: &str) -> Result<Self, String> {
        let doc = async_graphql::parser::parse_schema(sdl).map_err(|e| e.to_string())?;
        let mut shape = Self::default();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let name = t.node.name.node.to_string();
            if name.starts_with("__") {
                continue;
            }
            match &t.node.kind {
                TypeKind::Object(o) => {
                    shape.objects.insert(name, fields(&o.fields));
                }
                TypeKind::Interface(i) => {
                    shape.objects.insert(name, fields(&i.fields));
                }
                TypeKind::InputObject(i) => {
                    shape.inputs.insert(
                        name,
                        i.fields
                            .iter()
                            .map(|f| (f.node.name.node.to_string(), FieldType::of(&f.node.ty.node)))
                            .collect(),
                    );
                }
                TypeKind::Union(u) => {
                    shape
                        .unions
                        .insert(name, u.members.iter().map(|m| m.node.to_string()).collect());
                }
                _ => {}
            }
        }
        Ok(shape)
    }

    /// Every output field as `Type.field`.
    pub fn field_keys(&self) -> impl Iterator<Item = String> + '_ {
        self.objects
            .iter()
            .flat_map(|(t, fs)| fs.keys().map(move |f| format!("{t}.{f}")))
    }

    /// The shape of `Type.field`, if the schema has it.
    pub fn field(&self, type_name: &str, field: &str) -> Option<&FieldShape> {
        self.objects.get(type_name)?.get(field)
    }

    /// Every argument leaf the policy must classify, with the argument it belongs to:
    /// `Type.field.arg` for an argument of scalar, enum or list-of-scalar type, and
    /// `Type.field.arg.inputField[.inner…]` for each leaf of an input object (the policy may
    /// classify the whole argument `Type.field.arg` instead).
    pub fn argument_leaves(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (t, fs) in &self.objects {
            for (f, shape) in fs {
                for (a, ty) in &shape.arguments {
                    let arg = format!("{t}.{f}.{a}");
                    self.leaves(&arg, ty, &arg, &mut out, 0);
                }
            }
        }
        out
    }

    fn leaves(
        &self,
        prefix: &str,
        ty: &FieldType,
        arg: &str,
        out: &mut Vec<(String, String)>,
        depth: usize,
    ) {
        match self.inputs.get(&ty.named) {
            Some(fields) if depth < 8 => {
                for (name, inner) in fields {
                    self.leaves(&format!("{prefix}.{name}"), inner, arg, out, depth + 1);
                }
            }
            _ => out.push((prefix.to_string(), arg.to_string())),
        }
    }
}

fn fields(
    defs: &[async_graphql::Positioned<async_graphql::parser::types::FieldDefinition>],
) -> BTreeMap<String, FieldShape> {
    defs.iter()
        .map(|f| {
            (
                f.node.name.node.to_string(),
                FieldShape {
                    ty: FieldType::of(&f.node.ty.node),
                    arguments: f
                        .node
                        .arguments
                        .iter()
                        .map(|a| (a.node.name.node.to_string(), FieldType::of(&a.node.ty.node)))
                        .collect(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = r#"
        type Query { cases(filter: Filter, first: Int): [Case!]! case(id: ID!): Case }
        type Case { id: ID! name: String }
        input Filter { states: [String!] range: Range }
        input Range { from: String to: String }
    "#;

    #[test]
    fn fields_keep_their_nullability_and_list_kind() {
        let shape = SchemaShape::from_sdl(SDL).expect("parses");
        let cases = shape.field("Query", "cases").expect("cases");
        assert_eq!(
            cases.ty,
            FieldType {
                named: "Case".into(),
                nullable: false,
                list: true
            }
        );
        assert!(shape.field("Case", "name").expect("name").ty.nullable);
    }

    #[test]
    fn input_objects_expand_to_their_leaves() {
        let shape = SchemaShape::from_sdl(SDL).expect("parses");
        let leaves: Vec<String> = shape.argument_leaves().into_iter().map(|l| l.0).collect();
        assert_eq!(
            leaves,
            vec![
                "Query.case.id",
                "Query.cases.filter.range.from",
                "Query.cases.filter.range.to",
                "Query.cases.filter.states",
                "Query.cases.first",
            ]
        );
    }
}
